"""Which upstreams the gateway talks to: the configured channels; else one ``kie`` channel, at
KIE when a key is configured, or at the embedded sandbox."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette

from reelgate.config import DEFAULT_UPSTREAM_MODELS, Settings
from reelgate.domain.channels import ChannelConfig
from reelgate.domain.money import margin_to_ppm
from reelgate.upstream.kie import CHANNEL, KieProvider
from reelgate.upstream.modelark import ModelArkProvider
from reelgate.upstream.provider import Provider
from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app

EMBEDDED_SANDBOX_PATH: Final = "/sandbox"


@dataclass(frozen=True, slots=True)
class Upstream:
    channels: tuple[ChannelConfig, ...]
    providers: dict[str, Provider]
    """Each channel's adaptor, by channel id."""
    sandbox: Starlette | None
    """The sandbox app to mount at :data:`EMBEDDED_SANDBOX_PATH`, when it runs embedded."""


def provider_for(channel: ChannelConfig, settings: Settings) -> Provider:
    """The adaptor that speaks the channel's protocol."""
    if channel.provider == "modelark":
        return ModelArkProvider(
            channel.base_url,
            channel.api_key,
            channel=channel.id,
            models=channel.models,
            connect_timeout_s=settings.kie_connect_timeout_s,
            timeout_s=settings.kie_timeout_s,
        )
    return KieProvider(
        channel.base_url,
        channel.api_key,
        hmac_key=channel.webhook_hmac_key,
        connect_timeout_s=settings.kie_connect_timeout_s,
        timeout_s=settings.kie_timeout_s,
        channel=channel.id,
        models=channel.models,
    )


def single_channel(settings: Settings, provider: Provider) -> Upstream:
    """One channel around an adaptor made elsewhere (tests, tools): all models, priority 0."""
    config = ChannelConfig(
        id=provider.channel,
        provider="kie",
        base_url="",
        api_key="",
        models=DEFAULT_UPSTREAM_MODELS["kie"],
        margin_ppm=margin_to_ppm(settings.margin(provider.channel)),
    )
    return Upstream((config,), {config.id: provider}, None)


def channel_configs(settings: Settings) -> tuple[ChannelConfig, ...]:
    """The channels as configured, without making their adaptors (for the CLI)."""
    configured = settings.channel_settings()
    if configured is not None:
        return tuple(settings.channel_config(channel) for channel in configured)
    base_url = (
        settings.kie_base_url
        if settings.kie_api_key is not None
        else settings.loopback_url() + EMBEDDED_SANDBOX_PATH
    )
    return (
        ChannelConfig(
            id=CHANNEL,
            provider="kie",
            base_url=base_url,
            api_key="",
            models=DEFAULT_UPSTREAM_MODELS["kie"],
            margin_ppm=margin_to_ppm(settings.margin(CHANNEL)),
        ),
    )


def build_upstream(settings: Settings) -> Upstream:
    """With channels configured, each gets its adaptor. Otherwise, with
    ``REELGATE_KIE_API_KEY`` the adaptor talks to KIE; without it, the sandbox runs in this
    process and the same adaptor reaches it over HTTP, so that a first video comes out of the
    code path production uses."""
    configured = settings.channel_settings()
    if configured is not None:
        configs = tuple(settings.channel_config(channel) for channel in configured)
        return Upstream(
            configs, {config.id: provider_for(config, settings) for config in configs}, None
        )
    margin_ppm = margin_to_ppm(settings.margin(CHANNEL))
    sandbox = None
    if settings.kie_api_key is not None:
        hmac_key = settings.kie_webhook_hmac_key
        base_url, api_key = settings.kie_base_url, settings.kie_api_key.get_secret_value()
        webhook_key = hmac_key.get_secret_value() if hmac_key else None
    else:
        api_key, webhook_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        sandbox = create_sandbox_app(SandboxSettings(api_key=api_key, hmac_key=webhook_key))
        base_url = settings.loopback_url() + EMBEDDED_SANDBOX_PATH
    config = ChannelConfig(
        id=CHANNEL,
        provider="kie",
        base_url=base_url,
        api_key=api_key,
        models=DEFAULT_UPSTREAM_MODELS["kie"],
        margin_ppm=margin_ppm,
        webhook_hmac_key=webhook_key,
    )
    return Upstream((config,), {CHANNEL: provider_for(config, settings)}, sandbox)

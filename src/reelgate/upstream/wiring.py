"""Which upstream the gateway talks to: KIE when a key is configured, else the embedded sandbox."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette

from reelgate.config import Settings
from reelgate.upstream.kie import KieProvider
from reelgate.upstream.sandbox import SandboxSettings, create_sandbox_app

EMBEDDED_SANDBOX_PATH: Final = "/sandbox"


@dataclass(frozen=True, slots=True)
class Upstream:
    provider: KieProvider
    sandbox: Starlette | None
    """The sandbox app to mount at :data:`EMBEDDED_SANDBOX_PATH`, when it runs embedded."""


def build_upstream(settings: Settings) -> Upstream:
    """With ``REELGATE_KIE_API_KEY`` the adaptor talks to KIE. Without it, the sandbox runs in
    this process and the same adaptor reaches it over HTTP, so that a first video comes out of
    the code path production uses."""
    if settings.kie_api_key is not None:
        hmac_key = settings.kie_webhook_hmac_key
        provider = KieProvider(
            settings.kie_base_url,
            settings.kie_api_key.get_secret_value(),
            hmac_key=hmac_key.get_secret_value() if hmac_key else None,
            connect_timeout_s=settings.kie_connect_timeout_s,
            timeout_s=settings.kie_timeout_s,
        )
        return Upstream(provider, None)
    sandbox_key, sandbox_hmac_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    sandbox = create_sandbox_app(SandboxSettings(api_key=sandbox_key, hmac_key=sandbox_hmac_key))
    provider = KieProvider(
        settings.loopback_url() + EMBEDDED_SANDBOX_PATH,
        sandbox_key,
        hmac_key=sandbox_hmac_key,
        connect_timeout_s=settings.kie_connect_timeout_s,
        timeout_s=settings.kie_timeout_s,
    )
    return Upstream(provider, sandbox)

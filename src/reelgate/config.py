"""Settings, read once from ``REELGATE_*`` environment variables and passed down.

Every setting has a default that lets ``reelgate serve`` start with nothing configured.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgate.domain.catalogue import MODELS
from reelgate.domain.channels import SLUG, ChannelConfig, ProviderName
from reelgate.domain.lifecycle import Schedule
from reelgate.domain.money import MAX_MARGIN, MAX_PRICE_PER_SECOND_MICRO_USDC, margin_to_ppm
from reelgate.domain.pricing import PriceBook

# Per-second tier overrides in micro-USDC: {"seedance-2": {"720p_no_video": 205000}}.
PriceOverrides = dict[
    str, dict[str, Annotated[int, Field(ge=0, le=MAX_PRICE_PER_SECOND_MICRO_USDC)]]
]
# A multiplier on the upstream's price: positive, exact in parts per million, at most MAX_MARGIN.
Margin = Annotated[Decimal, Field(gt=0, le=MAX_MARGIN, decimal_places=6)]


DEFAULT_UPSTREAM_MODELS: Final[dict[str, dict[str, str]]] = {
    "kie": {model.id: model.upstream_id for model in MODELS.values()},
    "modelark": {
        "seedance-2": "dreamina-seedance-2-0-260128",
        "seedance-2-fast": "dreamina-seedance-2-0-fast-260128",
    },
}
"""What each provider calls the public models, when a channel does not say."""


class ChannelSetting(BaseModel):
    """One upstream account in ``REELGATE_CHANNELS`` / ``REELGATE_CHANNELS_FILE``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=SLUG.pattern)]
    provider: ProviderName = "kie"
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    api_key: SecretStr
    webhook_hmac_key: SecretStr | None = None
    models: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    """Public model id -> upstream model id; the provider's usual ids when absent."""
    resolutions: dict[str, list[Literal["480p", "720p", "1080p"]]] | None = None
    """Per model, the resolutions this channel offers, when fewer than the model's."""
    margin: Margin | None = None
    """When absent: REELGATE_CHANNEL_MARGINS for this id, else 1."""
    priority: int = 0
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    max_in_flight: Annotated[int, Field(ge=1)] | None = None
    requests_per_s: Annotated[float, Field(gt=0)] | None = None
    enabled: bool = True
    name: Annotated[str, Field(max_length=100)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("models", "resolutions")
    @classmethod
    def _known_models(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for model in value or {}:
            if model not in MODELS:
                raise ValueError(f"unknown model {model!r}; models are: {', '.join(MODELS)}")
        return value


_CHANNEL_LIST: Final = TypeAdapter(list[ChannelSetting])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELGATE_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str = "sqlite+aiosqlite:///./reelgate.db"
    """SQLite file by default; ``postgresql://user@host/db`` selects PostgreSQL."""

    admin_token: str | None = None
    """When unset, ``serve`` generates one on first start, prints it once and keeps its hash."""

    secret_key: SecretStr | None = None
    """Seals the secrets the database keeps and makes upstream callback tokens: 64 hexadecimal
    digits. When unset, the key is read from ``secret_key_file``."""
    secret_key_file: Path = Path("reelgate.key")
    """Where the secret key is kept when ``secret_key`` is unset (relative to the working
    directory, beside the default SQLite file); ``serve`` makes it on first start."""

    host: str = "127.0.0.1"
    port: int = 8000

    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    """Create bodies above this get a 413; 20,000-character prompts fit with room to spare."""
    body_timeout_s: float = Field(default=15.0, gt=0)
    """A request body not fully arrived this long after its headers gets a 408, and its
    connection is closed: a slow or stalled client cannot hold a connection for ever. The
    largest body (max_body_bytes) still needs only about 17 KB/s."""
    keep_alive_s: int = Field(default=5, ge=1)
    """An idle connection, between requests or before its first, is closed after this long."""
    max_connections: int = Field(default=1000, ge=1)
    """Connections one process serves at once; a request beyond them gets a 503 and its
    connection is closed. Keep it below the process's file descriptor limit (ulimit -n)."""

    recommended_poll_interval_ms: int = Field(default=5000, ge=100)

    metrics_public: bool = False
    """Serve /metrics without the admin token (for a scraper on a private network)."""
    log_format: Literal["json", "human"] | None = None
    """How log lines are written: one JSON object per line, or a line of text; when unset,
    JSON unless the log stream (standard error) is a terminal."""
    access_log: bool = False
    """A log line for every request: its route template, status and duration."""
    shutdown_drain_s: float = Field(default=5.0, ge=0)
    """On SIGTERM, ``serve`` answers /readyz with 503 for this long while it goes on serving,
    so that load balancers stop sending before it stops accepting; 0 stops at once."""

    channel_margins: dict[str, Margin] = Field(default_factory=lambda: {"kie": Decimal(1)})
    """Multiplier on the per-second tier price, per channel (1.25 = 25 % over cost)."""

    prices: PriceOverrides = Field(default_factory=dict)
    """Per-second prices in micro-USDC overriding the defaults taken from KIE's price table."""

    kie_base_url: str = "https://api.kie.ai"
    kie_api_key: SecretStr | None = None
    """With a key, tasks go to KIE; without one, ``serve`` runs the sandbox in-process."""
    kie_webhook_hmac_key: SecretStr | None = None
    """When set, KIE callbacks must carry a valid X-Webhook-Signature."""
    kie_connect_timeout_s: float = Field(default=5.0, gt=0)
    kie_timeout_s: float = Field(default=20.0, gt=0)
    """Longest wait for one KIE answer; a create that outlasts it is recorded as unknown."""

    channels: list[ChannelSetting] | None = None
    """The upstream accounts, a JSON list (see the README); with neither this nor
    ``channels_file``, one channel ``kie`` from the REELGATE_KIE_* settings (or the sandbox)."""
    channels_file: Path | None = None
    """A TOML file (a ``[[channels]]`` array) or JSON file (a list) with the same channels."""
    circuit_failures: int = Field(default=5, ge=1)
    """Consecutive not-accepted creates or transport errors that open a channel's circuit."""
    circuit_cool_down_s: float = Field(default=30.0, gt=0)
    """How long an open circuit skips its channel before one probe request may try it."""

    public_url: str | None = None
    """The gateway's address as the upstream can reach it; when set, KIE is given a callback URL
    and tasks move the moment it calls. ``serve`` with the embedded sandbox uses its own."""

    console: bool = True
    """Whether the API serves the web console at /console (``--no-console`` turns it off)."""

    run_engine: bool = True
    """Whether ``serve`` runs the task engine in the same process (``--no-engine`` turns it off)."""
    engine_first_poll_s: float = Field(default=2.0, gt=0)
    engine_poll_min_s: float = Field(default=2.0, gt=0)
    """The first wait between upstream checks of one task; it grows with each check."""
    engine_poll_max_s: float = Field(default=30.0, gt=0)
    engine_batch: int = Field(default=200, ge=1)
    engine_concurrency: int = Field(default=64, ge=1)
    """Upstream checks in flight at once, per engine."""
    engine_requests_per_s: float = Field(default=50.0, gt=0)
    """Upstream check budget per engine and channel; 429s and outages slow it further."""
    engine_lease_s: float = Field(default=60.0, gt=0)
    task_deadline_s: float = Field(default=3600.0, gt=0)
    """After this long a task gets one last upstream check, then fails with its money released."""
    pending_submission_s: float = Field(default=120.0, gt=0)
    """A create still unanswered this long after it was accepted is treated as sent without an
    answer (its process died): never resent, found again by its callback, or given up."""
    unknown_submission_s: float = Field(default=900.0, gt=0)
    """A create sent without an answer and not found again this long after it was accepted
    fails with its money released."""

    media_dir: Path = Path("reelgate-media")
    """Where finished videos are kept (relative to the working directory). Processes that split
    the API from the engine must share it."""
    media_link_ttl_s: int = Field(default=86_400, ge=60)
    """How long a signed video link in a task's result works; polling again gives a fresh one."""
    media_signing_key: SecretStr | None = None
    """Signs video links; when unset, one is generated once and kept in the database, sealed."""
    media_max_bytes: int = Field(default=2 * 1024**3, ge=1024)
    """A result larger than this is not copied (and the task does not succeed)."""
    media_timeout_s: float = Field(default=60.0, gt=0)
    """Longest silence while copying a video from the upstream."""

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait for a client's webhook receiver to answer one delivery."""
    webhook_concurrency: int = Field(default=32, ge=1)
    webhook_retry_scale: float = Field(default=1.0, gt=0)
    """Multiplies the retry schedule (5 s, 30 s, 2 min ... for a day); tests shrink it."""
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "allowed_networks", "REELGATE_ALLOWED_NETWORKS", "REELGATE_WEBHOOK_ALLOWED_NETWORKS"
        ),
    )
    """Networks the gateway may reach on others' word although they are not public, e.g.
    ["10.1.0.0/16"]: client webhooks and result downloads. Its old name,
    REELGATE_WEBHOOK_ALLOWED_NETWORKS, is still read."""

    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    """How long a create's Idempotency-Key and its first answer are kept, then pruned."""
    redis_url: str | None = None
    """When set (``redis://host:6379/0``), per-key request rates are counted in Redis and
    shared by every process of the deployment; when unset, in each process's memory."""

    task_cache_mb: int = Field(default=96, ge=0)
    """Memory for rendered task bodies kept to answer polls (0: none), in MiB."""
    key_cache_size: int = Field(default=10_000, ge=0)
    change_poll_interval_s: float = Field(default=0.1, gt=0)
    """How often a process on SQLite reads other processes' changes (PostgreSQL pushes them)."""

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @field_validator("channels")
    @classmethod
    def _channel_list(cls, channels: list[ChannelSetting] | None) -> list[ChannelSetting] | None:
        return None if channels is None else _checked(channels)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    @field_validator("prices")
    @classmethod
    def _known_tiers(cls, prices: PriceOverrides) -> PriceOverrides:
        # The price book refuses unknown models and tiers: asked now, a typo stops the start
        # with this setting named, instead of failing later inside the gateway.
        PriceBook(prices)
        return prices

    def channel_settings(self) -> list[ChannelSetting] | None:
        """The configured channels (from ``channels``, else ``channels_file``); None when
        neither is set. Raises ValueError naming what is wrong."""
        if self.channels is not None:
            listed = self.channels
        elif self.channels_file is not None:
            listed = _read_channels_file(self.channels_file)
        else:
            return None
        return _checked(listed)

    def channel_config(self, channel: ChannelSetting) -> ChannelConfig:
        margin = channel.margin if channel.margin is not None else self.margin(channel.id)
        hmac_key = channel.webhook_hmac_key
        return ChannelConfig(
            id=channel.id,
            provider=channel.provider,
            base_url=channel.base_url.rstrip("/"),
            api_key=channel.api_key.get_secret_value(),
            models=dict(
                channel.models
                if channel.models is not None
                else DEFAULT_UPSTREAM_MODELS[channel.provider]
            ),
            margin_ppm=margin_to_ppm(margin),
            priority=channel.priority,
            weight=channel.weight,
            max_in_flight=channel.max_in_flight,
            requests_per_s=channel.requests_per_s,
            enabled=channel.enabled,
            webhook_hmac_key=hmac_key.get_secret_value() if hmac_key else None,
            resolutions={m: tuple(r) for m, r in (channel.resolutions or {}).items()},
            name=channel.name,
            description=channel.description,
        )

    def loopback_url(self) -> str:
        """The gateway's own address, as a process on this machine reaches it."""
        host = self.host
        if host in ("0.0.0.0", ""):  # noqa: S104 - comparing, not binding
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def client_url(self) -> str:
        """The gateway's address as its clients reach it, for absolute links."""
        return (self.public_url or self.loopback_url()).rstrip("/")

    def schedule(self) -> Schedule:
        return Schedule(
            poll_min_s=self.engine_poll_min_s,
            poll_max_s=self.engine_poll_max_s,
            pending_submission_s=self.pending_submission_s,
            unknown_submission_s=self.unknown_submission_s,
        )

    def margin(self, channel: str) -> Decimal:
        return self.channel_margins.get(channel, Decimal(1))


def _checked(listed: list[ChannelSetting]) -> list[ChannelSetting]:
    ids = [channel.id for channel in listed]
    if len(set(ids)) != len(ids):
        raise ValueError(f"channel ids must be unique: {', '.join(ids)}")
    if not any(channel.enabled for channel in listed):
        raise ValueError("at least one channel must be enabled")
    return listed


def _read_channels_file(path: Path) -> list[ChannelSetting]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"REELGATE_CHANNELS_FILE {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            data = tomllib.loads(text).get("channels")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"REELGATE_CHANNELS_FILE {path} is not valid: {exc}") from None
    try:
        return _checked(_CHANNEL_LIST.validate_python(data))
    except ValidationError as exc:
        raise ValueError(f"REELGATE_CHANNELS_FILE {path}: {exc}") from None

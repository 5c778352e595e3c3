"""Settings, read once from ``REELGATE_*`` environment variables and passed down.

Every setting has a default that lets ``reelgate serve`` start with nothing configured.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgate.domain.lifecycle import Schedule
from reelgate.domain.money import MAX_MARGIN, MAX_PRICE_PER_SECOND_MICRO_USDC
from reelgate.domain.pricing import PriceBook

# Per-second tier overrides in micro-USDC: {"seedance-2": {"720p_no_video": 205000}}.
PriceOverrides = dict[
    str, dict[str, Annotated[int, Field(ge=0, le=MAX_PRICE_PER_SECOND_MICRO_USDC)]]
]
# A multiplier on the upstream's price: positive, exact in parts per million, at most MAX_MARGIN.
Margin = Annotated[Decimal, Field(gt=0, le=MAX_MARGIN, decimal_places=6)]


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

    public_url: str | None = None
    """The gateway's address as the upstream can reach it; when set, KIE is given a callback URL
    and tasks move the moment it calls. ``serve`` with the embedded sandbox uses its own."""

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

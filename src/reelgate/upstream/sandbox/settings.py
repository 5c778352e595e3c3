"""The sandbox's timings and fault knobs, from ``REELGATE_SANDBOX_*`` variables.

Per-endpoint faults are a map: ``REELGATE_SANDBOX_FAULTS='{"record": {"http_503": 0.1}}'``, or
one knob at a time with ``__`` between levels: ``REELGATE_SANDBOX_FAULTS__RECORD__LATENCY_MS=50``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Endpoint = Literal["create", "record", "credit"]
Share = Annotated[float, Field(ge=0, le=1)]
"""A probability, drawn per request (or per task) from the sandbox's one random source."""
BodyCode = Annotated[int, Field(ge=400, le=599)]


class EndpointFaults(BaseModel):
    """What goes wrong on one endpoint. Latency always applies; then at most one failure."""

    latency_ms: int = Field(default=0, ge=0)
    http_500: Share = 0.0
    http_503: Share = 0.0
    body_codes: dict[BodyCode, Share] = Field(default_factory=dict)
    """KIE body codes answered with HTTP 200, as KIE does: {429: 0.1, 455: 0.05, 500: 0.01}."""
    timeout: Share = 0.0
    """Hold the request for ``hang_s`` and do nothing: the client gives up first."""
    timeout_after_create: Share = 0.0
    """createTask only: create the task, then hold the request: an unknown outcome to the client."""


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELGATE_SANDBOX_", env_nested_delimiter="__", extra="ignore"
    )

    protocol: Literal["kie", "modelark"] = "kie"
    """Which upstream's API the sandbox speaks: KIE's Market API, or ModelArk's task API."""

    api_key: str | None = None
    """When set, requests must carry it; otherwise any bearer token is accepted."""
    hmac_key: str | None = None
    """When set, callbacks are signed as KIE signs them."""

    waiting_s: float = Field(default=1.0, ge=0)
    queuing_s: float = Field(default=1.0, ge=0)
    generating_s: float = Field(default=3.0, ge=0)

    fail_share: Share = 0.0
    fail_code: str = "501"
    fail_message: str = "generation failed (sandbox)"

    credits: float = Field(default=1_000_000.0, ge=0)
    """The account's starting KIE credits; each create spends what KIE would charge."""

    faults: dict[Endpoint, EndpointFaults] = Field(default_factory=dict)
    hang_s: float = Field(default=60.0, gt=0)
    """How long a timeout fault holds a request: longer than any client waits, but bounded."""

    callback_lost_share: Share = 0.0
    callback_duplicate_share: Share = 0.0
    callback_late_share: Share = 0.0
    callback_late_s: float = Field(default=5.0, ge=0)
    callback_timeout_s: float = Field(default=15.0, gt=0)
    """KIE expects an answer within 15 s."""
    callback_retry_s: float = Field(default=0.5, ge=0)
    """Pause between the (at most three) attempts of one callback."""

    media_dir: Path | None = None
    """Where rendered videos are cached; a temporary directory, removed on close, when unset."""
    public_base_url: str | None = None
    """Base of result URLs; by default the base URL the create request came in on."""
    fps: int = Field(default=12, ge=1, le=60)
    render_concurrency: int = Field(default=2, ge=1)
    """ffmpeg processes at once: a load test with many distinct prompts must not fork hundreds."""
    seed: int | None = None
    """Fixes every random draw so that a run can be repeated."""

    def faults_for(self, endpoint: Endpoint) -> EndpointFaults:
        return self.faults.get(endpoint) or EndpointFaults()

"""The sandbox's timings and fault knobs, from ``REELGATE_SANDBOX_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Endpoint = Literal["create", "record", "credit"]
Share = float


class EndpointFaults(BaseModel):
    """What goes wrong on one endpoint, as shares of requests (0 to 1) drawn independently."""

    latency_ms: int = Field(default=0, ge=0)
    http_500: Share = Field(default=0.0, ge=0, le=1)
    http_503: Share = Field(default=0.0, ge=0, le=1)
    body_codes: dict[int, Share] = Field(default_factory=dict)
    """KIE body codes answered with HTTP 200, as KIE does: {429: 0.1, 455: 0.05, 500: 0.01}."""
    timeout: Share = Field(default=0.0, ge=0, le=1)
    """Hold the request for ``hang_s`` without answering; nothing happens."""
    timeout_after_create: Share = Field(default=0.0, ge=0, le=1)
    """createTask only: create the task, then hold the request without answering."""


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELGATE_SANDBOX_", extra="ignore")

    api_key: str | None = None
    """When set, requests must carry it; otherwise any bearer token is accepted."""
    hmac_key: str | None = None
    """When set, callbacks are signed as KIE signs them."""

    waiting_s: float = Field(default=1.0, ge=0)
    queuing_s: float = Field(default=1.0, ge=0)
    generating_s: float = Field(default=3.0, ge=0)

    fail_share: Share = Field(default=0.0, ge=0, le=1)
    fail_code: str = "501"
    fail_message: str = "generation failed (sandbox)"

    credits: float = Field(default=1_000_000.0, ge=0)
    """The account's starting KIE credits; each create spends what KIE would charge."""

    faults: dict[Endpoint, EndpointFaults] = Field(default_factory=dict)
    hang_s: float = Field(default=60.0, gt=0)

    callback_lost_share: Share = Field(default=0.0, ge=0, le=1)
    callback_duplicate_share: Share = Field(default=0.0, ge=0, le=1)
    callback_late_share: Share = Field(default=0.0, ge=0, le=1)
    callback_late_s: float = Field(default=5.0, ge=0)
    callback_timeout_s: float = Field(default=15.0, gt=0)

    media_dir: Path | None = None
    """Where rendered videos are cached; a temporary directory when unset."""
    public_base_url: str | None = None
    """Base of result URLs; by default the base URL the create request came in on."""
    fps: int = Field(default=12, ge=1, le=60)
    seed: int | None = None
    """Fixes every random draw so that a run can be repeated."""

    def faults_for(self, endpoint: Endpoint) -> EndpointFaults:
        return self.faults.get(endpoint) or EndpointFaults()

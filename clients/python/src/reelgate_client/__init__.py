"""The Python client of a reelgate gateway: create video tasks, follow them, download the
videos, read the catalogue, the account and its usage, and verify webhooks."""

from reelgate_client import webhooks
from reelgate_client._common import __version__
from reelgate_client.async_client import AsyncReelgate
from reelgate_client.client import Reelgate
from reelgate_client.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequest,
    Conflict,
    InsufficientBalance,
    NotFound,
    PermissionDenied,
    RateLimited,
    ReelgateError,
    ServiceUnavailable,
    TaskFailed,
    UpstreamError,
    WaitTimeout,
)
from reelgate_client.types import (
    Account,
    Billing,
    Channel,
    Model,
    Page,
    Task,
    Tier,
    Usage,
    UsageFigures,
)
from reelgate_client.webhooks import WebhookVerificationError

__all__ = [
    "APIConnectionError",
    "Account",
    "AsyncReelgate",
    "AuthenticationError",
    "BadRequest",
    "Billing",
    "Channel",
    "Conflict",
    "InsufficientBalance",
    "Model",
    "NotFound",
    "Page",
    "PermissionDenied",
    "RateLimited",
    "Reelgate",
    "ReelgateError",
    "ServiceUnavailable",
    "Task",
    "TaskFailed",
    "Tier",
    "UpstreamError",
    "Usage",
    "UsageFigures",
    "WaitTimeout",
    "WebhookVerificationError",
    "__version__",
    "webhooks",
]

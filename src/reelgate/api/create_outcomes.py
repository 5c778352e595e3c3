"""How each create ended, counted by model: ``reelgate_task_creates_total{model,outcome}``.

A refusal's outcome follows from the status it is answered with (``api.errors`` gives every
error one), so an error class added later is counted by what it means to the client without
a change here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final

from reelgate.api.errors import answer_for
from reelgate.domain.catalogue import MODELS
from reelgate.domain.task import Submission, TaskRecord
from reelgate.errors import ReelgateError
from reelgate.services.metrics import Metrics

UNKNOWN_MODEL: Final = "unknown"
_BY_STATUS: Final = {
    400: "invalid",
    408: "invalid",
    413: "invalid",
    401: "unauthorized",
    402: "insufficient_balance",
    403: "forbidden",
    409: "conflict",
    422: "idempotency_key_reused",
    429: "rate_limited",
    502: "upstream_refused",
    503: "unavailable",
}


def refusal(exc: BaseException) -> str:
    if isinstance(exc, ReelgateError):
        return _BY_STATUS.get(answer_for(exc).status, "error")
    return "error"


class CreateOutcome:
    """Counts the create it encloses once, however it ends."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.model = UNKNOWN_MODEL
        self.outcome = "error"

    def __enter__(self) -> CreateOutcome:
        return self

    def body(self, body: object) -> None:
        """The decoded body: it names the model, when it names one the gateway offers."""
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model in MODELS:
            self.model = model

    def replayed(self) -> None:
        """A repeat answered with a create's first answer (Idempotency-Key)."""
        self.outcome = "replayed"

    def created(self, record: TaskRecord) -> None:
        unknown = record.submission is Submission.UNKNOWN
        self.outcome = "upstream_unknown" if unknown else "accepted"

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.metrics.task_create(self.model, self.outcome if exc is None else refusal(exc))

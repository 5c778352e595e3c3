"""Whether an upstream channel can take tasks, judged from how its recent calls went.

Readiness must not ask the upstream on every probe, so each call the gateway makes anyway (a
create, a status check) is remembered here. A channel is known dead once every call for
:data:`DEAD_AFTER_S` has failed in a way that says the upstream cannot work (unreachable, its
own errors, the operator's credentials or credits); a refused request, a rate limit or an
unknown task say it answers. With nothing heard for a while a dead channel is asked again, by
a call that costs nothing (:meth:`~reelgate.upstream.provider.Provider.probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEAD_AFTER_S: Final = 30.0
"""How long every call must have failed before the channel is known dead."""
STALE_AFTER_S: Final = 30.0
"""A dead channel heard of no more recently than this is asked again before it is judged."""

ALIVE_CODES: Final = frozenset(
    {"upstream_rate_limited", "upstream_not_found", "upstream_generation_failed"}
)
"""Failures that still prove the upstream answers and takes the gateway's credentials."""


def proves_alive(code: str, fault: str) -> bool:
    """Whether a failed call with this error code and fault still shows a working upstream."""
    return fault == "request" or code in ALIVE_CODES


@dataclass
class ChannelHealth:
    channel: str
    failing_since: float | None = None
    """Unix time of the first failure since the last call that went well; None when well."""
    last_heard: float | None = None
    """Unix time of the last call's outcome, good or bad."""
    last_error: str | None = None

    def succeeded(self, now: float) -> None:
        self.failing_since = None
        self.last_error = None
        self.last_heard = now

    def failed(self, code: str, fault: str, now: float) -> None:
        if proves_alive(code, fault):
            self.succeeded(now)
            return
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = code
        self.last_heard = now

    def dead(self, now: float) -> bool:
        """Known dead: failing for at least :data:`DEAD_AFTER_S`, nothing good heard since."""
        return self.failing_since is not None and now - self.failing_since >= DEAD_AFTER_S

    def worth_asking(self, now: float) -> bool:
        """Whether readiness should ask the upstream itself: it is dead by what was last
        heard, and that was long enough ago to be out of date."""
        return (
            self.dead(now)
            and self.last_heard is not None
            and now - self.last_heard >= STALE_AFTER_S
        )

"""Whether an upstream channel can take tasks, from how its recent calls went; and readiness
asking it again, once, when what is known is out of date."""

from __future__ import annotations

import pytest

from reelgate.domain.channel_health import DEAD_AFTER_S, STALE_AFTER_S, ChannelHealth
from reelgate.errors import UpstreamError
from reelgate.services.metrics import Metrics
from reelgate.services.observed_provider import ObservedProvider
from tests.doubles import AcceptingProvider, RefusingProvider


@pytest.mark.parametrize(
    ("code", "fault", "dead"),
    [
        ("upstream_unreachable", "upstream", True),
        ("upstream_server_error", "upstream", True),
        ("upstream_auth", "operator", True),
        ("upstream_credits", "operator", True),
        ("upstream_outcome_unknown", "upstream", True),
        # These prove the upstream answers and takes the gateway's credentials.
        ("upstream_rate_limited", "upstream", False),
        ("upstream_not_found", "upstream", False),
        ("upstream_rejected", "request", False),
    ],
)
def test_a_channel_is_dead_only_after_failing_in_a_way_that_says_so_for_long_enough(
    code: str, fault: str, dead: bool
) -> None:
    health = ChannelHealth("kie")
    health.failed(code, fault, now=1000.0)
    assert not health.dead(1000.0 + DEAD_AFTER_S - 1)
    assert health.dead(1000.0 + DEAD_AFTER_S) is dead


def test_one_good_call_makes_a_dead_channel_alive() -> None:
    health = ChannelHealth("kie")
    health.failed("upstream_unreachable", "upstream", now=0.0)
    health.failed("upstream_unreachable", "upstream", now=DEAD_AFTER_S)
    assert health.dead(DEAD_AFTER_S)
    health.succeeded(DEAD_AFTER_S + 1)
    assert not health.dead(DEAD_AFTER_S + 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


UNREACHABLE = UpstreamError("the video provider could not be reached", code="upstream_unreachable")


async def test_a_channel_failing_for_long_is_asked_again_before_it_is_called_dead() -> None:
    clock = Clock()
    refusing = RefusingProvider(UNREACHABLE)
    observed = ObservedProvider(refusing, Metrics(), clock)
    with pytest.raises(UpstreamError):
        await observed.submit(None, None)  # type: ignore[arg-type]
    assert await observed.alive(), "failing, but not for long"
    clock.now += DEAD_AFTER_S
    assert await observed.alive() is False, "dead by what was heard, not yet out of date"
    assert refusing.submissions == 1
    clock.now += STALE_AFTER_S
    assert await observed.alive() is False, "asked again: still failing"
    assert observed.health.last_heard == clock.now


async def test_a_dead_channel_that_answers_when_asked_again_is_alive() -> None:
    clock = Clock()
    observed = ObservedProvider(AcceptingProvider(), Metrics(), clock)
    observed.health.failed("upstream_unreachable", "upstream", clock.now)
    clock.now += DEAD_AFTER_S + STALE_AFTER_S
    assert await observed.alive()
    assert observed.health.failing_since is None

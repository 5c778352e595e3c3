"""The channels one process talks to: their adaptors, their shared circuits, and routing.

Routing reads the circuits from this process's copy, refreshed from the database every
:data:`REFRESH_S` (and at once by this process's own failures), so a create pays no database
read for it; only channels with a ``max_in_flight`` cost a count of their open tasks. The
decisions are :mod:`reelgate.domain.channels`'; this module carries them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from reelgate.domain import channels as rules
from reelgate.domain.channels import Admission, Candidate, ChannelConfig, Circuit
from reelgate.domain.request import VideoGenerationRequest
from reelgate.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from reelgate.services.metrics import Metrics
from reelgate.services.observed_provider import ObservedProvider
from reelgate.store import circuits
from reelgate.store.circuits import CircuitRow
from reelgate.store.database import Database
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

_CLOSED: Final = Circuit()
REFRESH_S: Final = 1.0
"""How stale this process's copy of the shared circuits may be."""


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A channel and its live health, as ``reelgate channels`` and the admin API show it."""

    config: ChannelConfig
    circuit: str
    """closed, open or half_open."""
    in_flight: int
    error_rate: float
    calls: int
    failures: int
    last_error: str | None
    last_error_at_ms: int | None
    open_until_ms: int | None


class Channels:
    def __init__(
        self,
        db: Database,
        configs: Sequence[ChannelConfig],
        providers: Mapping[str, Provider],
        metrics: Metrics,
        *,
        failures_to_open: int = rules.FAILURES_TO_OPEN,
        cool_down_s: float = rules.COOL_DOWN_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.configs = {config.id: config for config in configs}
        self.order = tuple(configs)
        self.observed = {
            cid: ObservedProvider(provider, metrics) for cid, provider in providers.items()
        }
        self.failures_to_open = failures_to_open
        self.cool_down_s = cool_down_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.circuits: dict[str, Circuit] = {}
        self._rows: dict[str, CircuitRow] = {}
        self._refreshed = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._calls: Counter[str] = Counter()
        self._single = (
            configs[0]
            if len(configs) == 1 and configs[0].enabled and configs[0].max_in_flight is None
            else None
        )
        enabled = [c for c in configs if c.enabled] or list(configs)
        self.default = min(enabled, key=lambda c: c.priority)
        """The default route: the model-level prices are its."""

    def provider(self, channel: str) -> ObservedProvider | None:
        return self.observed.get(channel)

    @property
    def providers(self) -> list[ObservedProvider]:
        return list(self.observed.values())

    async def start(self) -> None:
        await circuits.ensure(self.db, self.configs)
        await self.refresh()

    async def refresh(self) -> None:
        """Read the shared circuits, and add this process's calls that went well."""
        now_ms = self._now_ms()
        counts, self._calls = self._calls, Counter()
        if counts:
            await circuits.add_calls(self.db, dict(counts), now_ms)
        self._rows = await circuits.read_all(self.db)
        self.circuits = {cid: row.circuit for cid, row in self._rows.items()}
        self._refreshed = self.clock()

    def _maybe_refresh(self) -> None:
        if self.clock() - self._refreshed < REFRESH_S:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshed = self.clock()  # one refresh at a time
            self._refreshing = asyncio.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.warning("channels: cannot read the shared circuits", exc_info=True)

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refreshing
        with contextlib.suppress(Exception):
            if self._calls:
                await circuits.add_calls(self.db, dict(self._calls), self._now_ms())
        for provider in self.observed.values():
            await provider.aclose()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def pinned(self, request: VideoGenerationRequest) -> ChannelConfig | None:
        """The channel ``channel_id`` names, checked: 400 unless it exists, is enabled and
        serves the request."""
        if request.channel_id is None:
            return None
        config = self.configs.get(request.channel_id)
        if config is None or not config.enabled:
            raise InvalidRequest(
                "channel_id",
                f"no channel {request.channel_id!r} is available; see available_channels in "
                "GET /v1/models",
                code="unknown_channel",
            )
        if not config.serves(request.model):
            raise InvalidRequest(
                "channel_id",
                f"channel {config.id!r} does not serve {request.model}",
                code="channel_not_serving",
            )
        if not config.serves(request.model, request.resolution):
            raise InvalidRequest(
                "channel_id",
                f"channel {config.id!r} does not offer {request.resolution} for {request.model}",
                code="channel_not_serving",
            )
        return config

    async def plan(self, request: VideoGenerationRequest) -> list[ChannelConfig]:
        """The channels to try, in order; UpstreamUnavailable when none can take it now."""
        self._maybe_refresh()
        pinned = self.pinned(request)
        if pinned is None and self._single is not None:
            # The usual deployment, one channel: nothing to order.
            config = self._single
            if (
                config.serves(request.model, request.resolution)
                and self.circuits.get(config.id, _CLOSED).admission(self._now_ms())
                is Admission.CLOSED
            ):
                return [config]
        serving = (
            [pinned]
            if pinned is not None
            else [
                c for c in self.order if c.enabled and c.serves(request.model, request.resolution)
            ]
        )
        if not serving:
            raise InvalidRequest(
                "resolution",
                f"no channel offers {request.resolution} for {request.model}",
                code="channel_not_serving",
            )
        capped = [c.id for c in serving if c.max_in_flight is not None]
        counts = await circuits.in_flight(self.db, capped) if capped else {}
        now_ms = self._now_ms()
        candidates = [
            Candidate(
                c.id,
                c.priority,
                c.weight,
                self.circuits.get(c.id, Circuit()).admission(now_ms),
                full=c.max_in_flight is not None and counts.get(c.id, 0) >= c.max_in_flight,
            )
            for c in serving
        ]
        order = rules.route(candidates, self.rng.random)
        if not order:
            wait = rules.retry_after_s(
                [self.circuits.get(c.id, Circuit()) for c in serving], now_ms
            )
            raise UpstreamUnavailable(
                "no upstream channel can take this task now; nothing was charged",
                retry_after_s=wait,
            )
        return [self.configs[cid] for cid in order]

    async def admit(self, channel: str) -> bool:
        """Just before a create goes to ``channel``: a half-open channel takes one probe,
        which only one request of the deployment gets."""
        circuit = self.circuits.get(channel, Circuit())
        now_ms = self._now_ms()
        admission = circuit.admission(now_ms)
        if admission is Admission.CLOSED:
            return True
        if admission is Admission.OPEN:
            return False
        hold_ms = int(rules.PROBE_WINDOW_S * 1000)
        if await circuits.claim_probe(self.db, channel, now_ms, hold_ms):
            self.circuits[channel] = Circuit(
                circuit.failures, circuit.open_until_ms, now_ms + hold_ms
            )
            log.info("channel %s: probing after its cool-down", channel)
            return True
        return False

    async def submit(
        self, channel: str, request: VideoGenerationRequest, callback_url: str | None
    ) -> str:
        """Create the task at ``channel``, its outcome counted in the channel's circuit."""
        provider = self.observed[channel]
        try:
            upstream_id = await provider.submit(request, callback_url)
        except UpstreamError as exc:
            if rules.counts_against(exc.code):
                await self._failed(channel, exc.code)
            raise
        await self._succeeded(channel)
        return upstream_id

    async def _failed(self, channel: str, code: str) -> None:
        try:
            circuit = await circuits.record_failure(
                self.db, channel, code, self._now_ms(), self.failures_to_open, self.cool_down_s
            )
        except Exception:
            log.warning("channel %s: cannot note a failure", channel, exc_info=True)
            circuit = rules.after_failure(
                self.circuits.get(channel, Circuit()),
                self._now_ms(),
                threshold=self.failures_to_open,
                cool_down_s=self.cool_down_s,
            )
        if circuit.is_open and not self.circuits.get(channel, Circuit()).is_open:
            log.warning("channel %s: circuit open after %d failures", channel, circuit.failures)
        self.circuits[channel] = circuit

    async def _succeeded(self, channel: str) -> None:
        circuit = self.circuits.get(channel, Circuit())
        self._calls[channel] += 1
        if circuit.failures or circuit.is_open:
            try:
                await circuits.record_success(self.db, channel)
            except Exception:
                log.warning("channel %s: cannot note a success", channel, exc_info=True)
            if circuit.is_open:
                log.info("channel %s: circuit closed", channel)
            self.circuits[channel] = Circuit()

    async def statuses(self) -> list[ChannelStatus]:
        """Every configured channel with its health as the deployment shares it."""
        return await channel_statuses(self.db, self.order, self.clock)


def statuses(
    configs: Sequence[ChannelConfig],
    rows: Mapping[str, CircuitRow],
    counts: Mapping[str, int],
    now_ms: int,
) -> list[ChannelStatus]:
    result = []
    for config in configs:
        row = rows.get(config.id) or CircuitRow(config.id, Circuit())
        admission = row.circuit.admission(now_ms)
        state = {
            Admission.CLOSED: "closed",
            Admission.OPEN: "open",
            Admission.PROBE: "half_open",
        }[admission]
        if admission is Admission.OPEN and row.circuit.open_until_ms is not None:
            state = "open" if now_ms < row.circuit.open_until_ms else "half_open"
        result.append(
            ChannelStatus(
                config=config,
                circuit=state,
                in_flight=counts.get(config.id, 0),
                error_rate=row.error_rate,
                calls=row.calls,
                failures=row.circuit.failures,
                last_error=row.last_error,
                last_error_at_ms=row.last_error_at_ms,
                open_until_ms=row.circuit.open_until_ms,
            )
        )
    return result


async def channel_statuses(
    db: Database, configs: Sequence[ChannelConfig], clock: Callable[[], float] = time.time
) -> list[ChannelStatus]:
    """The configured channels with their health as every process of the deployment sees it
    (``reelgate channels``)."""
    rows = await circuits.read_all(db)
    counts = await circuits.in_flight(db)
    return statuses(configs, rows, counts, int(clock() * 1000))

"""Faults injected before an endpoint answers: latency, then at most one failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from starlette.responses import JSONResponse, Response

from reelgate.upstream.sandbox.draws import Draws
from reelgate.upstream.sandbox.envelope import MESSAGES, envelope
from reelgate.upstream.sandbox.settings import Endpoint, SandboxSettings
from reelgate.upstream.sandbox.stats import SandboxStats

Gone = Callable[[], Awaitable[None]]
"""Returns when the client of the request being held has disconnected."""


class Faults:
    def __init__(self, settings: SandboxSettings, draws: Draws, stats: SandboxStats) -> None:
        self.settings = settings
        self.draws = draws
        self.stats = stats

    async def hang(self, endpoint: Endpoint, kind: str, gone: Gone | None = None) -> Response:
        """Hold the request past the client's patience; whatever is answered then goes nowhere.
        With ``gone``, the hold ends as soon as the client has given up and left."""
        self.stats.faults[f"{endpoint}_{kind}"] += 1
        if gone is None:
            await asyncio.sleep(self.settings.hang_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone(), self.settings.hang_s)
        return envelope(500, "timed out")

    async def before(self, endpoint: Endpoint, gone: Gone | None = None) -> Response | None:
        """The injected answer, or None when the call goes through."""
        faults = self.settings.faults_for(endpoint)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self.draws.chance(faults.timeout):
            return await self.hang(endpoint, "timeout", gone)
        for status in (500, 503):
            if self.draws.chance(faults.http_500 if status == 500 else faults.http_503):
                self.stats.faults[f"{endpoint}_http_{status}"] += 1
                # The one case where the HTTP status itself says it: a proxy or crash, not KIE.
                return JSONResponse(
                    {"code": status, "msg": MESSAGES[status], "data": None}, status_code=status
                )
        for code, share in faults.body_codes.items():
            if self.draws.chance(share):
                self.stats.faults[f"{endpoint}_code_{code}"] += 1
                return envelope(code, MESSAGES.get(code, "error"))
        return None

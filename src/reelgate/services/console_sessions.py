"""Ending console sessions on the server: the session lives in a sealed cookie, so signing out
also records its id, which every console request then refuses until the session expires."""

from __future__ import annotations

import time

from reelgate.store import console_sessions
from reelgate.store.database import Database


class ConsoleSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def end(self, sid: str, expires_at_s: int) -> None:
        """The session is over: any copy of its cookie is refused from now on."""
        await console_sessions.revoke(self.db, sid, expires_at_s * 1000, int(time.time() * 1000))

    async def ended(self, sid: str) -> bool:
        return await console_sessions.is_revoked(self.db, sid)

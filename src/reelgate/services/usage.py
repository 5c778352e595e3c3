"""Task lists, statements and usage: what the API's list routes, the admin API and the command
line read. Pages for JSON; chunks for exports, each read on its own, so that an export of any
size streams without holding a transaction or the whole file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from reelgate.domain.accounts import Account
from reelgate.domain.listing import EXPORT_CHUNK, Page, TaskFilter, page_of
from reelgate.domain.task import TaskRecord
from reelgate.domain.usage import LedgerEntry, LedgerFilter, UsageQuery, UsageReport
from reelgate.services.accounts import AccountService
from reelgate.store import stats
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from reelgate.store.usage import UsageStore

T = TypeVar("T")
C = TypeVar("C")


async def _chunks(
    read: Callable[[C | None, int], Awaitable[list[T]]], cursor: Callable[[T], C], after: C | None
) -> AsyncIterator[Sequence[T]]:
    """Everything ``read`` gives from ``after`` on, ``EXPORT_CHUNK`` rows at a time."""
    while True:
        rows = await read(after, EXPORT_CHUNK)
        if rows:
            yield rows
        if len(rows) < EXPORT_CHUNK:
            return
        after = cursor(rows[-1])


class UsageService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tasks = TaskStore(db)
        self.store = UsageStore(db)
        self.accounts = AccountService(db)

    async def account_id(self, name: str) -> str:
        """The id of the account with this name; NotFound when there is none."""
        return await self.accounts.id_of(name)

    async def account(self, account_id: str) -> Account:
        return await self.accounts.store.by_id(account_id)

    async def task_page(self, where: TaskFilter, after: str | None, limit: int) -> Page[TaskRecord]:
        return page_of(await self.tasks.find(where, after, limit + 1), limit)

    def task_chunks(
        self, where: TaskFilter, after: str | None
    ) -> AsyncIterator[Sequence[TaskRecord]]:
        async def read(cursor: str | None, limit: int) -> list[TaskRecord]:
            return await self.tasks.find(where, cursor, limit)

        return _chunks(read, lambda record: record.id, after)

    async def ledger_page(
        self, where: LedgerFilter, after: int | None, limit: int
    ) -> Page[LedgerEntry]:
        return page_of(await self.store.entries(where, after, limit + 1), limit)

    def ledger_chunks(
        self, where: LedgerFilter, after: int | None
    ) -> AsyncIterator[Sequence[LedgerEntry]]:
        async def read(cursor: int | None, limit: int) -> list[LedgerEntry]:
            return await self.store.entries(where, cursor, limit)

        return _chunks(read, lambda entry: entry.id, after)

    async def usage(self, query: UsageQuery) -> UsageReport:
        return UsageReport(query, await self.store.usage(query))

    async def activity(self, since_s: int) -> stats.Activity:
        """Tasks created and ended per minute since ``since_s``, over every account."""
        return await stats.activity(self.db, since_s)

"""Opening the database as every process of the gateway does: with the secret key, checked
against the key the database's secrets are sealed under, and nothing left in plaintext."""

from __future__ import annotations

import hmac
import logging

from reelgate.config import Settings
from reelgate.domain.secret_key import SecretKey
from reelgate.errors import SecretKeyError
from reelgate.services.secret_key import key_source
from reelgate.store import meta
from reelgate.store.accounts import AccountStore
from reelgate.store.database import Database
from reelgate.store.plaintext import seal_plaintext
from reelgate.store.sealing import Sealer

log = logging.getLogger(__name__)


async def open_database(settings: Settings, key: SecretKey) -> Database:
    """The database, its secrets sealed under ``key``; SecretKeyError when they are sealed under
    another key. The database must already be migrated."""
    db = Database(settings.database_url, Sealer(key))
    try:
        await _check_key(db, settings, key)
        await _seal_plaintext(db)
    except BaseException:
        await db.dispose()
        raise
    return db


async def start_over_with_key(settings: Settings, key: SecretKey) -> int:
    """After the secret key was lost: seal under ``key`` from now on, replacing what only the
    lost key opened. Every account gets a new webhook secret and the media signing key is made
    anew; balances, the ledger, API keys and tasks are untouched. How many accounts changed.

    Run again after a failure half way: the database takes ``key`` only at the end."""
    db = Database(settings.database_url, Sealer(key))
    try:
        if await meta.get(db, meta.SECRET_KEY_FINGERPRINT) == key.fingerprint():
            raise SecretKeyError(
                f"{key_source(settings)} is already the key this database's secrets are sealed "
                "under: there is nothing to start over"
            )
        replaced = await AccountStore(db).replace_webhook_secrets()
        await meta.delete(db, meta.MEDIA_SIGNING_KEY)
        await meta.put(db, meta.SECRET_KEY_FINGERPRINT, key.fingerprint())
    finally:
        await db.dispose()
    return replaced


async def _check_key(db: Database, settings: Settings, key: SecretKey) -> None:
    """Refuse a key other than the one the database was first opened with, at start: a process
    given the wrong key must fail here, not later and only for some secrets. The database keeps
    the key's fingerprint, which tells nothing of the key."""
    fingerprint = key.fingerprint()
    kept = await meta.get(db, meta.SECRET_KEY_FINGERPRINT)
    if kept is None:
        # Of processes starting together on a new database, the first to store its key's wins.
        await meta.put_if_absent(db, meta.SECRET_KEY_FINGERPRINT, fingerprint)
        kept = await meta.get(db, meta.SECRET_KEY_FINGERPRINT)
    if kept is None or not hmac.compare_digest(kept, fingerprint):
        raise SecretKeyError(
            f"{key_source(settings)} is not the secret key this database's secrets are sealed "
            "under: every process of one gateway needs the key the database was first opened "
            "with (REELGATE_SECRET_KEY, or the file REELGATE_SECRET_KEY_FILE names)"
        )


async def _seal_plaintext(db: Database) -> None:
    sealed = await seal_plaintext(db)
    if sealed:
        log.info("sealed %d secrets an older reelgate kept in plaintext", sealed)

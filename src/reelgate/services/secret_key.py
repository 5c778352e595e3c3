"""The gateway's secret key: configured (``REELGATE_SECRET_KEY``), or kept in a file
(``REELGATE_SECRET_KEY_FILE``) that ``reelgate serve`` makes on first start.

Every process of one gateway needs the same key. Only ``serve`` makes one (and ``secret-key
reset``, which is asked to start over), so that an engine or a command run somewhere else fails,
saying why, instead of sealing under a key of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from reelgate.config import Settings
from reelgate.domain.secret_key import KEY_FORMAT, SecretKey, new_secret_key
from reelgate.errors import SecretKeyError
from reelgate.store import key_file

log = logging.getLogger(__name__)


def key_source(settings: Settings) -> str:
    """Where this process's key comes from, in words an operator can act on."""
    if settings.secret_key is not None:
        return "REELGATE_SECRET_KEY"
    return f"the secret key file {settings.secret_key_file.absolute()}"


def ensure_secret_key(settings: Settings) -> Path | None:
    """Make the key file when no key is configured and there is no file yet; its path only
    when this call made it, so that it is announced exactly once."""
    if settings.secret_key is not None:
        return None
    path = settings.secret_key_file
    try:
        if key_file.read(path) is not None or not key_file.create(path, new_secret_key()):
            return None
    except OSError as exc:
        raise SecretKeyError(
            f"cannot read or make the secret key file {path.absolute()}: {exc.strerror}; set "
            "REELGATE_SECRET_KEY_FILE to a writable place, or REELGATE_SECRET_KEY"
        ) from None
    return path.absolute()


def load_secret_key(settings: Settings) -> SecretKey:
    """This process's key; SecretKeyError, naming where it was looked for, when it is missing
    or malformed (the error never quotes it)."""
    if settings.secret_key is not None:
        text = settings.secret_key.get_secret_value()
    else:
        path = settings.secret_key_file
        try:
            kept = key_file.read(path)
        except OSError as exc:
            raise SecretKeyError(
                f"cannot read the secret key file {path.absolute()}: {exc.strerror}"
            ) from None
        if kept is None:
            raise SecretKeyError(
                f"no secret key: {path.absolute()} does not exist and REELGATE_SECRET_KEY is not "
                "set. `reelgate serve` makes the file on its first start; every other process of "
                "the gateway needs that same key (the file, or REELGATE_SECRET_KEY)"
            )
        if key_file.readable_by_others(path):
            log.warning("the secret key file %s is readable by others: chmod 600 it", path)
        text = kept
    try:
        return SecretKey.parse(text)
    except ValueError:
        raise SecretKeyError(
            f"{key_source(settings)} does not hold a valid secret key: it must be {KEY_FORMAT}"
        ) from None

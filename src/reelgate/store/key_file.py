"""The file that keeps the gateway's secret key when no ``REELGATE_SECRET_KEY`` is set."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def read(path: Path) -> str | None:
    """The file's text; None when there is no such file."""
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return None


def readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o077)


def create(path: Path, text: str) -> bool:
    """Write ``text`` as the file, readable by its owner only, unless the file exists; True when
    this call made it.

    The file appears whole or not at all: it is written under a name of its own (O_CREAT|O_EXCL,
    mode 0600) and then linked to ``path``, which fails when ``path`` exists. Of processes
    starting together one makes the file, and the others read that one's key.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        # The new name is durable only once its directory is.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
    finally:
        temporary.unlink(missing_ok=True)

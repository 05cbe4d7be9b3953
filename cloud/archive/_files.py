"""The SQLite archive's files on disk: readable and writable by the service's user only.

The archive holds every position, reading and alert of every tenant, and the API keys' hashes.
SQLite creates a database file with mode 0644 less the umask, so world-readable under the usual
umask 022. It gives the ``-wal`` and ``-shm`` files it makes later the database file's mode
(``os_unix.c``: ``findCreateFileMode``, ``unixOpenSharedMemory``), so a database file that is
0600 from the start keeps all three private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

__all__ = ["PRIVATE_MODE", "make_sqlite_files_private", "sqlite_path"]

log = logging.getLogger(__name__)
#: Owner read and write, nothing for the group or others.
PRIVATE_MODE: Final = 0o600
_COMPANIONS: Final = ("", "-wal", "-shm", "-journal")


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for another database, memory or a URI."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def make_sqlite_files_private(url: str) -> None:
    """Create the database file of ``url`` with mode 0600 if missing, else make it and its
    ``-wal``, ``-shm`` and ``-journal`` files 0600 (warning once for each file that was not).

    A folder that is missing or not writable is left for SQLite to report as it opens the file.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        for suffix in _COMPANIONS:
            _tighten(Path(f"{path}{suffix}"))
        return
    except OSError:
        return
    try:
        os.fchmod(fd, PRIVATE_MODE)  # the umask only takes bits away; this sets exactly 0600
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        path.chmod(PRIVATE_MODE)
    except OSError as exc:  # another user's file: say so, SQLite decides whether it opens
        log.warning("archive file %s is mode %04o, open to others: %s", path, mode, exc)
        return
    log.warning("archive file %s was mode %04o, open to others: now %04o", path, mode, PRIVATE_MODE)

"""The spool folder: where a sync keeps its gzip batches (record data) until Scarf has imported them.

A sync holds an exclusive lock on a file in its folder for as long as it runs, and the kernel drops
that lock when the process ends, however it ends (SIGKILL included). So a folder whose lock can be
taken belongs to a sync that is gone, and every new sync removes such stale folders before it starts:
batches of record data are never left in the temp folder for good.

Folders of 0.1.0, which had no lock, are removed once nothing in them has changed for a day.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("airbyte")

PREFIX = "destination-scarf-"
_LOCK = ".lock"
#: A folder without a lock file (made by 0.1.0) is stale once it is this old.
_UNLOCKED_STALE_SECONDS = 24 * 3600


class SpoolDir:
    """A private temp folder for this sync, locked while it lives; `close()` removes it."""

    def __init__(self, *, root: str | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
        # Lock a file under a temporary name, then rename it into place: a cleaner looks only at `.lock`,
        # so it can never take the lock of a folder in the instant between its creation and its locking.
        pending = self.path / ".lock-pending"
        self._lock_fd = os.open(pending, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(pending, self.path / _LOCK)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def remove_stale(root: str | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the spool folders of syncs that are gone (in `root`, default the temp folder); return them."""
    base = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = [entry for entry in base.iterdir() if entry.name.startswith(PREFIX)]
    except OSError:
        return []
    for folder in candidates:
        try:
            if _is_stale(folder, now=time.time() if now is None else now):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:  # another user's folder, or one that vanished meanwhile: not ours to judge
            continue
    if removed:
        logger.info("Removed %d spool folder(s) left behind by earlier syncs that did not end cleanly.",
                    len(removed))
    return removed


def _is_stale(folder: Path, *, now: float) -> bool:
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False  # a symlink or another user's folder is never removed
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return now - _newest_change(folder) > _UNLOCKED_STALE_SECONDS
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False  # a running sync holds it
        raise
    finally:
        os.close(fd)
    return True


def _newest_change(folder: Path) -> float:
    newest = os.lstat(folder).st_mtime
    for entry in folder.iterdir():
        newest = max(newest, os.lstat(entry).st_mtime)
    return newest

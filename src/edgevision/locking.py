"""One writer at a time: an advisory lock on an output (a bench ``--out`` directory, a latency table).

Two ``edgevision bench`` runs on one ``--out`` would both measure every model (each slowing the
other, so the stored medians are wrong) and record it twice; two ``lut build`` runs on one table
would measure each block twice under each other's load. The second run is therefore refused with
an error naming the first (pid, host, start time, command).

The lock is ``flock`` on a small file beside the output, which also records who holds it. The
kernel releases ``flock`` when its process dies, even under ``kill -9``, so a lock left by a killed
run is never an obstacle: the next run takes it over and reports whose it was.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

__all__ = ["LockHeldError", "exclusive_lock"]


class LockHeldError(OSError):
    """Another process holds the lock; the message names it."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EBUSY, message)

    def __str__(self) -> str:
        return self.strerror


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    command = " ".join(holder.get("command", []))[:120]
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}" + (f" ({command})" if command else "")


def _read(descriptor: int) -> dict:
    try:
        data = os.pread(descriptor, 65536, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str, *, remove_on_error: bool = False) -> Iterator[dict]:
    """Hold ``path`` (the lock file) exclusively; yields the record of a killed earlier holder ({} if none).

    Raises :class:`LockHeldError` at once (no waiting) if a running process holds it. ``remove_on_error``: if the
    block raises, delete the lock file (while still holding it) instead of leaving it empty: a refused run that
    created it leaves nothing behind.
    """
    import fcntl

    lock = Path(path)
    for _ in range(100):
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(descriptor)
            os.close(descriptor)
            raise LockHeldError(
                f"{what} is in use by {_describe(holder)}; wait for it to finish, or stop it "
                f"(a killed run's lock is released by itself)"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        if _is_current(descriptor, lock):
            break
        os.close(descriptor)  # its holder deleted the file between our open and our flock: lock the new one
    else:
        raise LockHeldError(f"{what}: its lock file {str(lock)!r} keeps being replaced; is another tool deleting it?")
    try:
        stale = _read(descriptor)  # still recorded: its holder died without releasing (kill -9, power loss)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv[:8],
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(record).encode("utf-8"), 0)
        try:
            yield stale
        except BaseException:
            if remove_on_error:
                with contextlib.suppress(OSError):
                    lock.unlink()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, 0)  # a clean exit leaves no holder behind
    finally:
        os.close(descriptor)  # closing releases the flock


def _is_current(descriptor: int, lock: Path) -> bool:
    """The locked descriptor is still the file at ``lock`` (not one a refused run unlinked meanwhile)."""
    try:
        now = os.stat(lock)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

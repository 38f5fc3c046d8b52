"""Write files atomically: a reader (or a crash) never sees a half-written file.

Work goes to a temporary file beside the target and is renamed over it only on success
(``os.replace`` is atomic on POSIX and Windows); on any error the temporary file is removed.

Only regular files are ever replaced: renaming over ``/dev/full``, ``/dev/null`` (as root), a FIFO
or a socket would destroy it, so such targets are refused before any work starts
(:func:`check_writable`) and again just before the rename. A symbolic link is written through (the
file it points to is replaced, the link stays). The temporary file is fsynced before the rename, so
a full disk (ENOSPC) is an ``OSError`` and never a silently truncated result. Temporary files carry
their writer's pid (``.<name>.<pid>.<random>.tmp``); one left by a killed writer is removed by the
next write of the same target (or by :func:`sweep_stale_temporaries` for a whole directory).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "check_writable", "sweep_stale_temporaries"]

#: room left in a file name for the ".<pid>.<random>.tmp" a temporary adds (NAME_MAX is 255 on Linux)
_STEM_LIMIT = 200
#: temporaries of the format before pids were in the name: removed once this old
_LEGACY_STALE_S = 600.0
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def _refuse_non_regular(target: Path, shown: str) -> None:
    try:
        mode = os.stat(target).st_mode  # follows a symlink: what it points to is what would be written
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (the parent is checked by the caller)
        return
    except OSError as error:
        raise OSError(f"cannot write {shown!r}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write {shown!r}: it is a directory; give a file name")
    if not stat.S_ISREG(mode):
        raise OSError(f"cannot write {shown!r}: it is a {_file_kind(mode)}, not a regular file, and replacing it would destroy it; give a file path")


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before expensive work, if ``path`` cannot be written; returns it as a Path."""
    from .validation import ValidationError, check_name_length

    shown = os.fspath(path)
    if not shown.strip():
        raise OSError("an empty string is not a file path; give a file name")
    try:
        check_name_length(shown, "cannot write")
    except ValidationError as error:
        raise OSError(str(error)) from None
    target = Path(path)
    _refuse_non_regular(target, shown)
    real = _real_target(target)
    parent = real.parent if str(real.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OSError(f"cannot write {shown!r}: {str(parent)!r} is a file, not a directory; choose another path")
    if not parent.is_dir():
        raise OSError(f"cannot write {shown!r}: directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OSError(f"cannot write {shown!r}: directory {str(parent)!r} is not writable; choose another path")
    if real.exists() and not os.access(real, os.W_OK):
        raise OSError(f"cannot write {shown!r}: the file is read-only; choose another path or make it writable")
    return target


def _real_target(target: Path) -> Path:
    """A symlink is written through: replace what it points to, keep the link."""
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def _temporary_prefix(target: Path) -> str:
    return f".{target.name[:_STEM_LIMIT]}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def sweep_stale_temporaries(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove temporaries in ``directory`` (of target ``name`` only, if given) whose writer is no longer running."""
    folder = Path(directory)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    stem = None if name is None else name[:_STEM_LIMIT]
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        match = _TEMPORARY.match(entry.name)
        if match:
            if stem is not None and match["stem"] != stem:
                continue
            stale = not _alive(int(match["pid"]))
        else:  # written before pids were recorded: only an old one is surely abandoned
            if stem is not None and not entry.name.startswith(f".{stem}."):
                continue
            try:
                stale = time.time() - entry.lstat().st_mtime > _LEGACY_STALE_S
            except OSError:
                continue
        if stale and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # a full disk or an I/O error surfaces here, before the rename
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    shown = os.fspath(path)
    target = _real_target(check_writable(path))
    sweep_stale_temporaries(target.parent if str(target.parent) else ".", target.name)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=_temporary_prefix(target), suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(temporary)
        # mkstemp makes 0600, and a writer may replace the temporary with its own (safetensors does,
        # again 0600): give the finished file ordinary permissions, as open() under this umask would
        os.chmod(temporary, 0o666 & ~umask)
        _fsync(temporary)
        _refuse_non_regular(target, shown)  # it may have become a device or FIFO while we worked
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")

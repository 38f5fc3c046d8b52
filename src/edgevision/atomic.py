"""Write files atomically: a reader (or a crash) never sees a half-written file.

Work goes to a temporary file beside the target and is renamed over it only on success
(``os.replace`` is atomic on POSIX and Windows); on any error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "check_writable"]


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before expensive work, if ``path`` cannot be written; returns it as a Path."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OSError(f"cannot write {str(target)!r}: it is a directory; give a file name")
    if parent.exists() and not parent.is_dir():
        raise OSError(f"cannot write {str(target)!r}: {str(parent)!r} is a file, not a directory; choose another path")
    if not parent.is_dir():
        raise OSError(f"cannot write {str(target)!r}: directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OSError(f"cannot write {str(target)!r}: directory {str(parent)!r} is not writable; choose another path")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    target = check_writable(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")

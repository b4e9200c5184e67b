"""The build lock of an index folder: one writer at a time.

``fashionrec index`` and ``fashionrec engine`` hold it while they write; a
second writer fails at once naming the holder, rather than interleaving
writes. Readers (``recommend``, ``serve``) never take it: they see whole
generations (see :mod:`.folder`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexFolderError


@contextlib.contextmanager
def exclusive_build_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on the index folder ``out`` (which must exist) while in the block.

    The lock is ``flock`` on the folder itself (no lock file in the folder: it
    would look like a foreign file), so it is released when the holder ends,
    even by kill -9. A second build into the same folder, from this process
    or another, raises :class:`IndexFolderError` at once naming the holder's
    pid when the system tells it (Linux: ``/proc/locks``). Where ``fcntl`` is
    missing (Windows) nothing is locked.
    """
    out = Path(out)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(out)
            by = f" (pid {holder})" if holder is not None else ""
            raise IndexFolderError(
                f"index folder {out} is being written by another `fashionrec index` run{by}; "
                "wait for it or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_holder(path: Path) -> int | None:
    """The pid holding a ``flock`` on ``path``, from ``/proc/locks``; None when it cannot be told."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    exact: list[int] = []
    same_inode: list[int] = []
    for line in text.splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 12345 fd:01:123456 0 EOF"; waiters carry "->"
        if len(fields) < 6 or fields[1] != "FLOCK" or "->" in fields:
            continue
        device = fields[5].split(":")
        if len(device) != 3 or device[2] != str(st.st_ino) or not fields[4].isdigit():
            continue
        same_inode.append(int(fields[4]))
        try:
            if (int(device[0], 16), int(device[1], 16)) == (os.major(st.st_dev), os.minor(st.st_dev)):
                exact.append(int(fields[4]))
        except ValueError:
            continue
    found = exact or same_inode
    return found[0] if len(set(found)) == 1 else None

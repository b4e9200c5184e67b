"""Writing what fashionrec produces: files replaced atomically, values as plain JSON.

Every file fashionrec writes — index data, manifests, checkpoints, charts,
figures, reports — goes through :func:`atomic_write`, so a reader never sees a
half-written file and an interrupted run leaves the previous version in place.
Every value that leaves as JSON (CLI output, ``evaluation.json``, manifests)
goes through :func:`json_value`, so NumPy and pandas scalars and missing values
are written the same way everywhere.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``target``, then rename it over ``target``.

    The file gets the permissions a plain ``open()`` would give (0666 less the
    umask), not the 0600 of a bare temporary file, so an index or a report can
    be shared like any other file.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _umask() -> int:
    # The umask can only be read by setting it; read it once, on first write.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_value(value: Any) -> Any:
    """``value`` as a plain JSON value: NumPy/pandas scalars unwrapped, missing and non-finite as None.

    Strings, lists and dicts pass through; anything else becomes its ``str``.
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (str, list, dict)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # array-likes have no single truth value
        pass
    return str(value)

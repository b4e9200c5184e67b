"""Writing what fashionrec produces: files replaced atomically, values as plain JSON.

Every file fashionrec writes — index data, manifests, checkpoints, charts,
figures, reports — goes through :func:`atomic_write`, so a reader never sees a
half-written file and an interrupted run leaves the previous version in place.
Every value that leaves as JSON (CLI output, ``evaluation.json``, manifests)
goes through :func:`json_value`, so NumPy and pandas scalars and missing values
are written the same way everywhere.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from .crashpoints import crash_point


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``target``, then rename it over ``target``.

    The temporary file is created with mode 0666, so the kernel applies the
    process's umask exactly as for a plain ``open()`` (not the 0600 of
    ``tempfile.mkstemp``): an index or a report can be shared like any other
    file. The umask is never read or changed, so this is safe from any thread.
    """
    target = Path(target)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(f"replace {target.name}")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_folder(target: str | os.PathLike, fill: Callable[[Path], Any]) -> Path:
    """Replace the folder ``target`` as a whole: ``fill(new_folder)`` writes the files, then one rename switches.

    ``target`` becomes a symbolic link to a hidden sibling folder
    (``.<name>.<hex>``) that ``fill`` has filled; the link is switched with one
    atomic rename, so a reader sees the previous folder or the new one, whole,
    and a crash mid-way leaves the previous one in place (the unfinished folder
    is removed by the next replacement). Returns ``target``.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    current = os.readlink(target) if target.is_symlink() else None
    for stale in target.parent.glob(f".{target.name}.*"):  # unfinished or replaced folders of earlier writes
        if stale.name == current:
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    fresh = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}"
    fresh.mkdir()
    fill(fresh)
    previous = Path(os.path.realpath(target)) if target.is_symlink() else None
    if target.exists() and not target.is_symlink():  # a plain folder (written otherwise): moved aside first
        previous = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}"
        os.rename(target, previous)
    link = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.link"
    os.symlink(fresh.name, link)
    crash_point(f"switch folder {target.name}")
    os.replace(link, target)
    if previous is not None and previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
    return target


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


def plain_values(values: pd.Series) -> list[Any]:
    """A column as a list of plain JSON values (as :func:`json_value` gives), converted a column at a time.

    Integers become ``int``, floats ``float`` (NaN and infinities None),
    booleans ``bool``, text ``str``; missing values None. Much faster than
    converting value by value: result records are built from these lists.
    """
    kind = values.dtype.kind
    if kind in "iu" and not isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return values.to_numpy().tolist()
    if kind == "b" and not isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return values.to_numpy().tolist()
    if kind == "f" and not isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return [v if math.isfinite(v) else None for v in values.to_numpy(dtype=np.float64).tolist()]
    objects = values.to_numpy(dtype=object, na_value=None).tolist()
    if pd.api.types.is_string_dtype(values.dtype) and not kind == "O":
        return objects  # a pandas string column: str or None already
    return [json_value(v) for v in objects]  # nullable integers / booleans, mixed objects

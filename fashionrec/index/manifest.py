"""The manifest of an index folder: what produced the vectors and how to read them.

``manifest.json`` is written last by :func:`fashionrec.index.write_index`, into
the same generation folder as the data files (:func:`generation_dir` finds it);
its keys are :data:`MANIFEST_KEYS` (documented in the README). :func:`read_manifest`
validates it (the keys' types too); :func:`check_writable_folder` checks,
before a build starts, that a folder can hold an index; :func:`check_compatible` refuses to mix vectors of different
backbones, weights or preprocessing in one folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import IndexFolderError

FORMAT_NAME = "fashionrec-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CURRENT_LINK = "current"
"""Symbolic link ``<index>/current -> generations/<generation>``: the generation a reader sees."""
GENERATIONS_DIR = "generations"
"""Folder of ``<index>`` holding one sub-folder per written generation (normally just the current one)."""

MANIFEST_KEYS: dict[str, str] = {
    "format": f'always "{FORMAT_NAME}"',
    "format_version": "integer; readers refuse versions they do not know",
    "fashionrec_version": "version of fashionrec that wrote the folder",
    "created": "ISO 8601 UTC time the index was first built",
    "updated": "ISO 8601 UTC time of the last (incremental) update",
    "generation": "random token, repeated in products.parquet metadata",
    "backbone": "backbone name in fashionrec's registry (e.g. resnet50)",
    "weights": "identity of the weights (source and checksum)",
    "weights_path": "local weights file used, or null for the library's own",
    "preprocessing": "input_size, resize_size, mode (crop|pad), interpolation, mean, std, pad_fill",
    "dim": "feature dimension D",
    "count": "number of vectors N (rows of both data files)",
    "dtype": 'always "float32"',
    "runtime": "inference runtime that computed the vectors (torch, onnxruntime, openvino)",
    "precision": "inference precision (fp32, bf16)",
    "catalog": "root: catalog folder; where: attribute filter used to select products",
    "skipped": "products left out: list of {id, image, reason}",
    "checksums": "algorithm (crc32), block_rows, embeddings: checksum of each block of rows, ids: of the ids in order",
    "engines": "search engines saved under engines/: name, metric, parameters, build time, measured recall and latency",
}
"""Keys of ``manifest.json`` and what they hold (documented in the README)."""

REQUIRED_KEYS = ("format", "format_version", "backbone", "weights", "preprocessing", "dim", "count")
COMPATIBILITY_KEYS = ("backbone", "weights", "preprocessing", "features")
"""Two sets of vectors may be mixed only when these manifest fields agree.

``dim`` follows from them: a manifest whose ``dim`` disagrees with its backbone
is damaged (``fashionrec index`` rebuilds it), not an index of other settings."""


def generation_dir(path: str | os.PathLike) -> Path:
    """The folder holding the data files of the index folder ``path``, resolved once.

    ``<path>/current`` resolved to its real path when that link is there (it
    names ``generations/<generation>``), else ``path`` itself: a folder written
    before generations existed keeps its files at the top level.
    """
    path = Path(path)
    link = path / CURRENT_LINK
    if link.is_symlink():
        return Path(os.path.realpath(link))
    return path


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate ``manifest.json`` of an index folder (of its current generation)."""
    path = Path(path)
    return parse_manifest(path, generation_dir(path))


def parse_manifest(path: Path, data: Path) -> dict[str, Any]:
    """Parse and validate ``data/manifest.json``, ``data`` being :func:`generation_dir` of the index folder ``path``."""
    file, shown = data / MANIFEST_FILE, path / MANIFEST_FILE  # read the generation's, name the documented path
    if not path.is_dir():
        raise IndexFolderError(f"index folder {path} does not exist; build one with `fashionrec index CATALOG --out {path}`")
    repair = f"re-run `fashionrec index CATALOG --out {path}` to repair it"
    if not file.is_file():
        if (path / CURRENT_LINK).is_symlink():
            raise IndexFolderError(f"index {path} is damaged: {CURRENT_LINK} points at a missing generation; {repair}")
        if has_index_traces(path):
            raise IndexFolderError(
                f"index {path} is incomplete or damaged: {MANIFEST_FILE} is missing (a build interrupted, or files "
                f"deleted); {repair} (it resumes an interrupted build)"
            )
        raise IndexFolderError(f"{path} is not an index folder: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFolderError(f"cannot read {shown}: {exc}; the manifest is damaged: {repair}") from None
    if not isinstance(manifest, dict):
        raise IndexFolderError(f"{shown}: expected a JSON object, got {_json_type(manifest)}; "
                               f"the manifest is damaged: {repair}")
    repair = f"re-run `fashionrec index {catalog_root_of(manifest)} --out {path}` to repair it"
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise IndexFolderError(f"{shown}: missing keys {missing}; the manifest is damaged: {repair}")
    if manifest["format"] != FORMAT_NAME:
        raise IndexFolderError(f"{shown}: format {manifest['format']!r}, expected {FORMAT_NAME!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexFolderError(
            f"{shown}: format_version {manifest['format_version']!r}; this fashionrec {__version__} reads {FORMAT_VERSION}"
        )
    for key, kind in _TYPED_KEYS.items():
        if key in manifest and not isinstance(manifest[key], kind):
            value = manifest[key]
            raise IndexFolderError(
                f"{shown}: {key!r} is {json.dumps(value)[:60]} ({_json_type(value)}), expected {_json_name(kind)} "
                f"({MANIFEST_KEYS[key]}); the manifest is damaged: {repair}"
            )
    for key, least in _COUNT_KEYS.items():
        value = manifest[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise IndexFolderError(
                f"{shown}: {key!r} is {json.dumps(value)} ({_json_type(value)}), expected a whole number >= {least} "
                f"({MANIFEST_KEYS[key]}); the manifest is damaged: re-run `fashionrec index {catalog_root_of(manifest)} "
                f"--out {path}` to rebuild it"
            )
    return manifest


def catalog_root_of(manifest: Mapping[str, Any]) -> str:
    """The catalog folder a manifest records, for the command that rebuilds its index ("CATALOG" when unknown)."""
    catalog = manifest.get("catalog")
    root = catalog.get("root") if isinstance(catalog, dict) else None
    return root if isinstance(root, str) and root else "CATALOG"


_INDEX_TRACES = (GENERATIONS_DIR, ".partial", "embeddings.npy", "products.parquet")
"""Entries that make a folder without a manifest a damaged or unfinished index folder rather than another folder."""

_TYPED_KEYS: dict[str, type | tuple[type, ...]] = {
    "backbone": str, "weights": str, "preprocessing": dict, "generation": str,
    "catalog": dict, "skipped": list, "checksums": dict, "engines": list,
}
"""Manifest keys whose JSON type is checked on load (when present), so a damaged one is named, not tripped over."""


def has_index_traces(path: str | os.PathLike) -> bool:
    """True when the folder ``path`` holds entries only an index folder has (a damaged or unfinished one, maybe)."""
    return any(os.path.lexists(Path(path) / name) for name in (*_INDEX_TRACES, CURRENT_LINK, MANIFEST_FILE))


def _json_name(kind) -> str:
    """'a string', 'an object', ... for a Python type of :data:`_TYPED_KEYS`."""
    return {str: "a string", dict: "an object", list: "an array"}[kind]


_COUNT_KEYS = {"dim": 1, "count": 0}
"""Manifest keys holding a whole number, and their least value."""


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, as a user wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def check_writable_folder(path: str | os.PathLike) -> Path:
    """Make sure an index can be written to ``path`` before any long work: returns it as a Path.

    Creates the folder (and its parents) when missing, then creates and
    removes a probe file in it, so that a file in the way, a read-only folder
    or a path that cannot exist (under ``/proc``) fails at once with an
    :class:`IndexFolderError` saying what to do, not after the embedding.
    """
    path = Path(path)
    hint = "choose an --out folder you can write to"
    if path.exists() and not path.is_dir():
        raise IndexFolderError(f"index folder {path} is an existing file, not a folder; {hint} (a new or index folder path)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexFolderError(f"cannot create the index folder {path}: {exc.strerror or exc}; {hint}") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".fashionrec-write-check-", dir=path)
    except OSError as exc:
        raise IndexFolderError(f"cannot write into the index folder {path}: {exc.strerror or exc}; "
                               f"{hint}, or give yourself write access to it") from None
    os.close(handle)
    os.unlink(probe)
    return path


def is_foreign_format(path: str | os.PathLike) -> bool:
    """True when the manifest of the index folder ``path`` parses and names another format or format version.

    Such a folder was written by another tool or another fashionrec version:
    it is refused, never rebuilt over. A manifest that does not parse, or
    lacks these keys, is damaged instead (see :func:`read_manifest`).
    """
    try:
        manifest = json.loads((generation_dir(path) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or "format" not in manifest or "format_version" not in manifest:
        return False
    return manifest["format"] != FORMAT_NAME or manifest["format_version"] != FORMAT_VERSION


def check_compatible(existing: Mapping[str, Any], wanted: Mapping[str, Any], *, where: str) -> None:
    """Refuse to mix vectors from different backbones, weights or preprocessing."""
    diffs = [
        f"{key}: index has {existing.get(key)!r}, requested {wanted.get(key)!r}"
        for key in COMPATIBILITY_KEYS
        if existing.get(key) != wanted.get(key)
    ]
    if diffs:
        raise IndexFolderError(
            f"{where} was built with different settings ({'; '.join(diffs)}); "
            "vectors of different backbones, preprocessing or feature transforms cannot be mixed — use another "
            "--out folder"
        )


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

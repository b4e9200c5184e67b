"""The manifest of an index folder: what produced the vectors and how to read them.

``manifest.json`` is written last by :func:`fashionrec.index.write_index`; its
keys are :data:`MANIFEST_KEYS` (documented in the README). :func:`read_manifest`
validates it; :func:`check_compatible` refuses to mix vectors of different
backbones, weights or preprocessing in one folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import IndexFolderError

FORMAT_NAME = "fashionrec-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

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
}
"""Keys of ``manifest.json`` and what they hold (documented in the README)."""

REQUIRED_KEYS = ("format", "format_version", "backbone", "weights", "preprocessing", "dim", "count")
COMPATIBILITY_KEYS = ("backbone", "weights", "preprocessing", "dim")
"""Two sets of vectors may be mixed only when these manifest fields agree."""


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate ``manifest.json`` of an index folder."""
    path = Path(path)
    file = path / MANIFEST_FILE
    if not path.is_dir():
        raise IndexFolderError(f"index folder {path} does not exist; build one with `fashionrec index CATALOG --out {path}`")
    if not file.is_file():
        raise IndexFolderError(f"{path} is not an index folder: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFolderError(f"cannot read {file}: {exc}") from None
    if not isinstance(manifest, dict):
        raise IndexFolderError(f"{file}: expected a JSON object, got {type(manifest).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise IndexFolderError(f"{file}: missing keys {missing}")
    if manifest["format"] != FORMAT_NAME:
        raise IndexFolderError(f"{file}: format {manifest['format']!r}, expected {FORMAT_NAME!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexFolderError(
            f"{file}: format_version {manifest['format_version']!r}; this fashionrec {__version__} reads {FORMAT_VERSION}"
        )
    return manifest


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
            "vectors of different backbones or preprocessing cannot be mixed — use another --out folder"
        )


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

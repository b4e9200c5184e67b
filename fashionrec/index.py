"""Stage 3 — the index folder: embeddings stored once, queried many times.

An index folder holds three files that any tool can read:

``embeddings.npy``
    float32 array of shape (N, D), C order, memory-mappable
    (``numpy.load(path, mmap_mode="r")``). Row i is the feature vector of
    row i of ``products.parquet``. Features are stored as the backbone
    produced them (not normalised).
``products.parquet``
    The N catalog rows in the same order: ``id`` first, the catalog
    attributes, then ``image`` (path relative to the catalog root) and
    ``image_signature`` (file size and mtime, to notice changed images).
``manifest.json``
    What produced the vectors and how to read them; see :data:`MANIFEST_KEYS`.

Files are replaced atomically and the manifest is written last; it records
the row count and a ``generation`` token that ``products.parquet`` repeats in
its metadata, so a folder caught half-written by a crash is detected on load
rather than silently mis-read.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import IndexFolderError
from .output import atomic_write

log = logging.getLogger(__name__)

FORMAT_NAME = "fashionrec-index"
FORMAT_VERSION = 1
EMBEDDINGS_FILE = "embeddings.npy"
PRODUCTS_FILE = "products.parquet"
MANIFEST_FILE = "manifest.json"
_GENERATION_KEY = b"fashionrec.generation"

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


@dataclass
class IndexFolder:
    """A loaded index folder.

    Attributes
    ----------
    path: the folder.
    manifest: the parsed ``manifest.json``.
    embeddings: (N, D) float32, memory-mapped read-only when loaded from disk.
    products: N catalog rows, ``id`` first, in the order of ``embeddings``.
    """

    path: Path
    manifest: dict[str, Any]
    embeddings: np.ndarray
    products: pd.DataFrame

    def __len__(self) -> int:
        return len(self.products)

    @property
    def backbone(self) -> str:
        return self.manifest["backbone"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def catalog_root(self) -> Path | None:
        root = (self.manifest.get("catalog") or {}).get("root")
        return Path(root) if root else None

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True) -> IndexFolder:
        """Read and validate an index folder; raises :class:`IndexFolderError`."""
        path = Path(path)
        manifest = read_manifest(path)
        emb_path, prod_path = path / EMBEDDINGS_FILE, path / PRODUCTS_FILE
        for file in (emb_path, prod_path):
            if not file.is_file():
                raise IndexFolderError(f"index {path} is incomplete: {file.name} is missing; re-run `fashionrec index`")
        try:
            embeddings = np.load(emb_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"cannot read {emb_path}: {exc}") from None
        try:
            table = pq.read_table(prod_path)
        except (OSError, pa.ArrowException) as exc:
            raise IndexFolderError(f"cannot read {prod_path}: {exc}") from None
        generation = (table.schema.metadata or {}).get(_GENERATION_KEY, b"").decode()
        if manifest.get("generation") and generation != manifest["generation"]:
            raise IndexFolderError(
                f"index {path} is inconsistent: {PRODUCTS_FILE} and {MANIFEST_FILE} come from different runs "
                "(was a write interrupted?); re-run `fashionrec index` to repair it"
            )
        expected = (int(manifest["count"]), int(manifest["dim"]))
        if embeddings.dtype != np.float32 or embeddings.ndim != 2 or embeddings.shape != expected:
            raise IndexFolderError(
                f"{emb_path}: got {embeddings.dtype} array of shape {embeddings.shape}, "
                f"expected float32 {expected} as {MANIFEST_FILE} says; re-run `fashionrec index` to repair it"
            )
        if table.num_rows != expected[0]:
            raise IndexFolderError(
                f"{prod_path}: {table.num_rows} rows, expected {expected[0]}; re-run `fashionrec index` to repair it"
            )
        products = table.to_pandas()
        return cls(path, manifest, embeddings, products)


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


def write_index(
    path: str | os.PathLike,
    embeddings: np.ndarray,
    products: pd.DataFrame,
    manifest: Mapping[str, Any],
) -> dict[str, Any]:
    """Write an index folder atomically; returns the manifest as written.

    ``embeddings`` is (N, D) float32 aligned with the N ``products`` rows.
    ``manifest`` needs at least backbone, weights, preprocessing; count, dim,
    format, generation and timestamps are filled in here.
    """
    path = Path(path)
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(products):
        raise IndexFolderError(
            f"cannot write index {path}: embeddings shape {embeddings.shape} does not match {len(products)} products"
        )
    if products.columns[0] != "id":
        raise IndexFolderError(f"cannot write index {path}: products must have 'id' first, got {list(products.columns)[:3]}")
    path.mkdir(parents=True, exist_ok=True)
    now = utc_now()
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fashionrec_version": __version__,
        "created": now,
        **dict(manifest),
        "updated": now,
        "generation": uuid.uuid4().hex,
        "dim": int(embeddings.shape[1]),
        "count": int(embeddings.shape[0]),
        "dtype": "float32",
    }
    table = pa.Table.from_pandas(products.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _GENERATION_KEY: full["generation"].encode()})

    # Data files first, manifest last: a crash in between leaves a manifest whose
    # generation/count no longer match, which load() reports.
    atomic_write(path / EMBEDDINGS_FILE, lambda f: np.save(f, embeddings, allow_pickle=False))
    atomic_write(path / PRODUCTS_FILE, lambda f: pq.write_table(table, f))
    atomic_write(path / MANIFEST_FILE, lambda f: f.write(json.dumps(full, indent=2, default=str).encode()))
    return full


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

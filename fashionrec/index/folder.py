"""The index folder: embeddings stored once, queried many times.

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
    What produced the vectors and how to read them; see :mod:`.manifest`.
``engines/<name>/``
    Files a search engine keeps for itself (:meth:`IndexFolder.engine_dir`),
    written by the engine's ``save``; the exact engine needs none.

The three data files change together or not at all. Each write puts them
into a fresh folder ``generations/<generation>/`` and then switches one
symbolic link, ``current -> generations/<generation>``, with a single atomic
rename; the top-level ``embeddings.npy``, ``products.parquet`` and
``manifest.json`` are fixed links to ``current/<file>``, so every tool that
opens the documented paths sees one generation, and :meth:`IndexFolder.load`
resolves ``current`` once and reads all three from that folder. A crash
before the switch leaves the previous generation in place (the next write
removes the unfinished folder); the previous generation is removed after the
switch. A folder written before generations existed (real files at the top
level) still loads, and its next write moves it to this layout without ever
showing a mix. ``manifest.json`` records the row count and the generation
token, which ``products.parquet`` repeats in its metadata and which names the
generation folder, so files brought together from different runs are detected
on load rather than silently mis-read.

Every vector is finite and every row is where it was written:
:func:`write_index` refuses NaN or inf and records checksums in the manifest
(``checksums``: a CRC-32 of each block of :data:`CHECKSUM_BLOCK_ROWS` rows of
``embeddings.npy``, and one of the product ids in row order), and
:meth:`IndexFolder.load` checks every row against both in one pass over the
memory map. A damaged, shuffled or swapped file gives a clear error instead of
silently wrong neighbours; ``fashionrec index`` re-embeds the damaged rows.
Folders written before checksums existed load without that check.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..crashpoints import crash_point
from ..errors import IndexFolderError
from ..output import atomic_write, json_value
from .manifest import (
    catalog_root_of,
    CURRENT_LINK,
    FORMAT_NAME,
    FORMAT_VERSION,
    GENERATIONS_DIR,
    MANIFEST_FILE,
    generation_dir,
    parse_manifest,
    utc_now,
)

log = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"
PRODUCTS_FILE = "products.parquet"
ENGINES_DIR = "engines"
_GENERATION_KEY = b"fashionrec.generation"
DATA_FILES = (EMBEDDINGS_FILE, PRODUCTS_FILE, MANIFEST_FILE)
"""The files of one generation, written in this order (the manifest last)."""
_ADOPTED_PREFIX = "flat-"
"""Name prefix of the generation folder that takes the files of a folder written in the old flat layout."""


@dataclass(eq=False)
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

    @functools.cached_property
    def vector_ids(self) -> np.ndarray:
        """(N,) int64 ids under which search engines hold the vectors.

        The product ids themselves when they are distinct non-negative integers
        (the Kaggle catalog); otherwise each product's rank in id order, so that
        distance ties still resolve by product id.
        """
        return vector_ids(self.products["id"])

    def engine_dir(self, name: str) -> Path:
        """Folder for the files of search engine ``name``: ``<index>/engines/<name>``."""
        return self.path / ENGINES_DIR / name

    @property
    def catalog_root(self) -> Path | None:
        root = (self.manifest.get("catalog") or {}).get("root")
        return Path(root) if root else None

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True, check_finite: bool = True) -> IndexFolder:
        """Read and validate an index folder; raises :class:`IndexFolderError`.

        With ``check_finite`` (the default) every vector is checked and a NaN or
        inf anywhere is an error naming the first bad row, its product id and
        how many rows are bad. ``check_finite=False`` is for repairing such a
        folder (see :meth:`damaged_rows`).
        """
        path = Path(path)
        data = generation_dir(path)  # resolved once: all three files come from this one folder
        manifest = parse_manifest(path, data)
        emb_path, prod_path = data / EMBEDDINGS_FILE, data / PRODUCTS_FILE
        adopted = data.name.startswith(_ADOPTED_PREFIX)  # files of the old flat layout, named by no generation
        if data != path and not adopted and data.name != manifest.get("generation"):
            raise IndexFolderError(
                f"index {path} is inconsistent: {CURRENT_LINK} names generation {data.name!r} but its {MANIFEST_FILE} "
                f"records {manifest.get('generation')!r}; {repair_hint(path, manifest)}"
            )
        for file in (emb_path, prod_path):
            if not file.is_file():
                raise IndexFolderError(f"index {path} is incomplete: {file.name} is missing; {repair_hint(path, manifest)}")
        try:
            embeddings = np.load(emb_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # a zero-byte file is an EOFError
            raise IndexFolderError(f"cannot read {emb_path}: {exc}; {repair_hint(path, manifest)}") from None
        try:
            table = pq.read_table(prod_path)
        except (OSError, pa.ArrowException) as exc:
            raise IndexFolderError(f"cannot read {prod_path}: {exc}; {repair_hint(path, manifest)}") from None
        generation = (table.schema.metadata or {}).get(_GENERATION_KEY, b"").decode()
        if manifest.get("generation") and generation != manifest["generation"]:
            raise IndexFolderError(
                f"index {path} is inconsistent: {PRODUCTS_FILE} and {MANIFEST_FILE} come from different runs "
                f"(was a write interrupted?); {repair_hint(path, manifest)}"
            )
        expected = (int(manifest["count"]), int(manifest["dim"]))
        if embeddings.dtype != np.float32 or embeddings.ndim != 2 or embeddings.shape != expected:
            raise IndexFolderError(
                f"{emb_path}: got {embeddings.dtype} array of shape {embeddings.shape}, "
                f"expected float32 {expected} as {MANIFEST_FILE} says; {repair_hint(path, manifest)}"
            )
        if table.num_rows != expected[0]:
            raise IndexFolderError(
                f"{prod_path}: {table.num_rows} rows, expected {expected[0]}; {repair_hint(path, manifest)}"
            )
        products = table.to_pandas()
        folder = cls(path, manifest, embeddings, products)
        folder._check_ids()
        if check_finite:
            scan = folder._scan()
            release_pages(embeddings)  # the check read every page once; queries may need few of them
            if len(scan.non_finite):
                raise IndexFolderError(folder._non_finite_message(scan.non_finite))
            if len(scan.mismatched):
                raise IndexFolderError(folder._checksum_message(scan.mismatched))
        return folder

    def damaged_rows(self) -> np.ndarray:
        """(m,) int64 positions of rows that cannot be trusted, ascending: a NaN or inf,
        or in a block whose checksum does not match the manifest's (what ``fashionrec index`` re-embeds)."""
        scan = self._scan()
        rows = [scan.non_finite] + [np.arange(start, stop, dtype=np.int64) for start, stop in scan.mismatched]
        return np.unique(np.concatenate(rows)) if len(rows) > 1 else scan.non_finite

    def _checksums(self) -> dict[str, Any]:
        """The manifest's ``checksums``, checked: ``{}`` for a folder written before checksums existed."""
        sums = self.manifest.get("checksums")
        if sums is None:
            return {}
        valid = (
            sums.get("algorithm") == CHECKSUM_ALGORITHM
            and _whole(sums.get("block_rows")) and sums["block_rows"] > 0 and _whole(sums.get("ids"))
            and isinstance(sums.get("embeddings"), list) and all(_whole(v) for v in sums["embeddings"])
        )
        if not valid:
            raise IndexFolderError(
                f"{self.path / MANIFEST_FILE}: 'checksums' is not what fashionrec writes "
                f"(algorithm {CHECKSUM_ALGORITHM!r}, block_rows, ids, embeddings); the manifest is damaged: "
                f"{repair_hint(self.path, self.manifest)}"
            )
        return sums

    def _scan(self) -> EmbeddingsScan:
        sums = self._checksums()
        return scan_embeddings(self.embeddings, expected=sums.get("embeddings"), block_rows=sums.get("block_rows"))

    def _check_ids(self) -> None:
        """Refuse a products file whose rows are not those the manifest's checksum was made of (shuffled, swapped)."""
        sums = self._checksums()
        if sums and ids_checksum(self.products["id"]) != sums["ids"]:
            raise IndexFolderError(
                f"index {self.path} is damaged: the product ids of {PRODUCTS_FILE} are not those, in that order, "
                f"that {MANIFEST_FILE} records (rows shuffled, or the file replaced?), so vectors would be shown "
                f"for the wrong products; {repair_hint(self.path, self.manifest)}"
            )

    def _checksum_message(self, mismatched: list[tuple[int, int]]) -> str:
        first, last = mismatched[0]
        return (
            f"index {self.path} is damaged: {EMBEDDINGS_FILE} rows {first}-{last - 1} do not match their checksum "
            f"in {MANIFEST_FILE} ({len(mismatched)} block(s) of rows differ: rows changed, shuffled or the file "
            f"replaced); {repair_hint(self.path, self.manifest)}"
        )

    def _non_finite_message(self, bad: np.ndarray) -> str:
        first = int(bad[0])
        values = np.asarray(self.embeddings[first])
        kinds = " and ".join(k for k, hit in (("NaN", np.isnan(values).any()), ("inf", np.isinf(values).any())) if hit)
        return (
            f"index {self.path} is damaged: {EMBEDDINGS_FILE} row {first} (product id "
            f"{json_value(self.products['id'].iloc[first])}) holds {kinds}, and {len(bad)} of {len(self)} rows "
            f"are not finite; {repair_hint(self.path, self.manifest)}"
        )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def repair_hint(path: Path, manifest: Mapping[str, Any]) -> str:
    """What to do about a damaged index folder: the `fashionrec index` command that repairs it."""
    return f"re-run `fashionrec index {catalog_root_of(manifest)} --out {path}` to repair it"


_CHECK_BYTES = 8 << 20
"""Bytes of vectors checked at once by :func:`scan_embeddings` (bounds its temporary memory)."""


CHECKSUM_ALGORITHM = "crc32"
CHECKSUM_BLOCK_ROWS = 256
"""Rows of ``embeddings.npy`` per checksum: a damaged row costs re-embedding at most this many images."""


@dataclass(frozen=True)
class EmbeddingsScan:
    """What one pass over an (N, D) embeddings array found."""

    non_finite: np.ndarray
    """(m,) int64 positions of rows holding a NaN or inf, ascending."""
    checksums: list[int]
    """CRC-32 of each block of ``block_rows`` rows, in order (the last block may be shorter)."""
    mismatched: list[tuple[int, int]]
    """``(start, stop)`` row ranges of the blocks whose checksum differs from the expected one."""


def scan_embeddings(
    embeddings: np.ndarray, *, block_rows: int | None = None, expected: list[int] | None = None
) -> EmbeddingsScan:
    """Check every row of the (N, D) float32 ``embeddings`` for NaN/inf and checksum it, in one pass.

    Reads a few megabytes at a time, so a memory map is checked without being
    copied. ``expected`` (the manifest's block checksums) is compared when
    given; a different number of blocks marks every block as mismatched.
    ``block_rows`` defaults to :data:`CHECKSUM_BLOCK_ROWS`.
    """
    block_rows = block_rows or CHECKSUM_BLOCK_ROWS
    n = len(embeddings) if embeddings.ndim == 2 else 0
    width = embeddings.shape[1] * embeddings.itemsize if embeddings.ndim == 2 else 1
    step = block_rows * max(1, _CHECK_BYTES // max(1, width * block_rows))  # whole blocks per pass
    bad, sums = [], []
    for start in range(0, n, step):
        part = np.ascontiguousarray(embeddings[start : start + step])
        finite = np.isfinite(part).all(axis=1)
        if not finite.all():
            bad.append(np.flatnonzero(~finite) + start)
        for offset in range(0, len(part), block_rows):
            sums.append(zlib.crc32(memoryview(part[offset : offset + block_rows]).cast("B")))
    non_finite = np.concatenate(bad).astype(np.int64) if bad else np.zeros(0, np.int64)
    mismatched: list[tuple[int, int]] = []
    if expected is not None:
        blocks = [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]
        if len(expected) != len(sums):
            mismatched = blocks or [(0, 0)]
        else:
            mismatched = [block for block, got, want in zip(blocks, sums, expected) if got != want]
    return EmbeddingsScan(non_finite, sums, mismatched)


def release_pages(array: np.ndarray) -> None:
    """Drop a memory-mapped array's pages from this process's resident memory (they stay in the page cache).

    After a one-off pass over a memory map (the load check), its pages would
    count in the process's resident memory until the kernel needs them; an
    approximate engine then reads only a few rows per query. Nothing happens
    for an array in memory, or where ``madvise`` is unavailable.
    """
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is None and isinstance(getattr(array, "base", None), np.memmap):
        handle = getattr(array.base, "_mmap", None)
    if handle is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # pragma: no cover - platform without it
        pass


def ids_checksum(ids: pd.Series) -> int:
    """CRC-32 of the product ids in row order (as text, one per line): detects shuffled or replaced rows."""
    return zlib.crc32("\n".join(map(str, pd.Series(ids).tolist())).encode("utf-8"))


def vector_ids(ids: pd.Series) -> np.ndarray:
    """Engine ids for product ids: themselves when distinct non-negative integers, else their rank in id order."""
    ids = pd.Series(ids).reset_index(drop=True)
    if pd.api.types.is_integer_dtype(ids.dtype) and not ids.isna().any():
        values = ids.to_numpy(dtype=np.int64)
        if (len(values) == 0 or values.min() >= 0) and ids.is_unique:
            return values
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


def write_index(
    path: str | os.PathLike,
    embeddings: np.ndarray,
    products: pd.DataFrame,
    manifest: Mapping[str, Any],
) -> dict[str, Any]:
    """Write an index folder atomically, as one new generation; returns the manifest as written.

    The three files go to ``generations/<generation>/``, which the ``current``
    link is then switched to in one rename (the module docstring has the
    layout); a crash at any point leaves the folder showing either the
    previous generation or this one, whole.

    ``embeddings`` is (N, D) float32 aligned with the N ``products`` rows.
    ``manifest`` needs at least backbone, weights, preprocessing; count, dim,
    format, generation and timestamps are filled in here. Raises
    :class:`IndexFolderError` when the shapes disagree or a vector holds a NaN
    or inf (nothing is written then).
    """
    path = Path(path)
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(products):
        raise IndexFolderError(
            f"cannot write index {path}: embeddings shape {embeddings.shape} does not match {len(products)} products"
        )
    if products.columns[0] != "id":
        raise IndexFolderError(f"cannot write index {path}: products must have 'id' first, got {list(products.columns)[:3]}")
    scan = scan_embeddings(embeddings, block_rows=CHECKSUM_BLOCK_ROWS)
    bad = scan.non_finite
    if len(bad):
        raise IndexFolderError(
            f"cannot write index {path}: {len(bad)} of {len(embeddings)} vectors are not finite "
            f"(first: row {int(bad[0])}, product id {json_value(products['id'].iloc[int(bad[0])])}); "
            "every vector must be finite"
        )
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
        "checksums": {
            "algorithm": CHECKSUM_ALGORITHM,
            "block_rows": CHECKSUM_BLOCK_ROWS,  # as read at the call: tests use small blocks
            "ids": ids_checksum(products["id"]),
            "embeddings": scan.checksums,
        },
    }
    table = pa.Table.from_pandas(products.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _GENERATION_KEY: full["generation"].encode()})

    _adopt_flat_layout(path)
    remove_leftovers(path)  # of writes killed mid-way
    generation = path / GENERATIONS_DIR / full["generation"]
    generation.mkdir(parents=True)
    atomic_write(generation / EMBEDDINGS_FILE, lambda f: np.save(f, embeddings, allow_pickle=False))
    atomic_write(generation / PRODUCTS_FILE, lambda f: pq.write_table(table, f))
    atomic_write(generation / MANIFEST_FILE, lambda f: f.write(json.dumps(full, indent=2, default=str).encode()))
    _fsync_dir(generation)
    _link_data_files(path)  # once per folder; they dangle until the first switch
    _switch_link(path / CURRENT_LINK, Path(GENERATIONS_DIR) / full["generation"])  # the one atomic step
    crash_point("remove previous generations")
    _remove_other_generations(path)
    return full


def remove_leftovers(path: str | os.PathLike) -> None:
    """Delete what index writes killed mid-way left in the index folder ``path``, and restore its links.

    That is every generation folder but the current one (unfinished, or
    replaced but not yet removed) and the temporary files of this module's
    writes (``.<data file or link>.<hex>.tmp``); the top-level links to
    ``current/<file>`` are made again when missing. Call it only while holding
    the folder's build lock, when no other write can be in progress.
    """
    path = Path(path)
    if (path / CURRENT_LINK).is_symlink():
        _link_data_files(path)
    for name in (*DATA_FILES, CURRENT_LINK):
        for leftover in path.glob(f".{name}.*.tmp"):
            if leftover.is_symlink() or leftover.is_file():
                leftover.unlink(missing_ok=True)
    _remove_other_generations(path)


def update_manifest(path: str | os.PathLike, **changes: Any) -> dict[str, Any]:
    """Set top-level keys of the current generation's ``manifest.json`` (one atomic replacement); returns it.

    For records about the index that are not its data (the engines saved
    beside it): the generation and its data files stay as they are. Call it
    while holding the folder's build lock.
    """
    path = Path(path)
    data = generation_dir(path)
    manifest = parse_manifest(path, data)
    manifest.update(changes)
    text = json.dumps(manifest, indent=2, default=str)
    atomic_write(data / MANIFEST_FILE, lambda f: f.write(text.encode()))
    return manifest


def _switch_link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target`` (relative to its folder) with one atomic rename."""
    tmp = link.parent / f".{link.name}.{uuid.uuid4().hex[:12]}.tmp"
    os.symlink(target, tmp)
    try:
        crash_point(f"switch link {link.name}")
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(link.parent)


def _link_data_files(path: Path) -> None:
    """Make each top-level data file a link to ``current/<file>`` (done once per folder; links are kept)."""
    for name in DATA_FILES:
        target = Path(CURRENT_LINK) / name
        file = path / name
        if file.is_symlink() and Path(os.readlink(file)) == target:
            continue
        _switch_link(file, target)


def _adopt_flat_layout(path: Path) -> None:
    """Move a folder written before generations existed (real files at the top level) to the generation layout.

    Its files are linked (or copied) into a generation folder, ``current`` is
    pointed at it, and only then are the top-level files replaced by links to
    ``current``: at every step the documented paths show the same, old files.
    """
    manifest = path / MANIFEST_FILE
    if (path / CURRENT_LINK).is_symlink() or manifest.is_symlink() or not manifest.is_file():
        return  # already moved, or no index here (stray files of a crashed old build are simply replaced)
    _remove_other_generations(path)
    old = path / GENERATIONS_DIR / f"{_ADOPTED_PREFIX}{uuid.uuid4().hex}"
    old.mkdir(parents=True)
    for name in DATA_FILES:
        source = path / name
        if source.is_file() and not source.is_symlink():
            try:
                os.link(source, old / name)
            except OSError:  # no hard links on this file system
                shutil.copy2(source, old / name)
    _fsync_dir(old)
    _switch_link(path / CURRENT_LINK, Path(GENERATIONS_DIR) / old.name)
    _link_data_files(path)
    log.info("moved index %s to the generation layout (%s)", path, old.relative_to(path))


def _remove_other_generations(path: Path) -> None:
    """Remove every generation folder but the current one: finished-with or never-finished ones."""
    folder = path / GENERATIONS_DIR
    if not folder.is_dir():
        return
    link = path / CURRENT_LINK
    current = Path(os.path.realpath(link)).name if link.is_symlink() else None
    for entry in folder.iterdir():
        if entry.name != current:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk where the platform allows it (renames survive a power cut)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

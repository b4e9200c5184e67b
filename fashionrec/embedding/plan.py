"""Planning a build: what one :func:`~fashionrec.embedding.build_index` run must do.

:func:`plan_build` stats every selected image once, gathers the results that
can be reused (vectors and remembered failures of the index already in the
folder, and of an interrupted run's checkpoint), and decides which images must
be embedded and whether the index is already up to date. It embeds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import Catalog
from ..errors import IndexFolderError
from ..index import MANIFEST_FILE, IndexFolder, check_compatible, generation_dir, read_manifest
from ..index.manifest import has_index_traces, is_foreign_format
from ..output import json_value
from .checkpoint import PARTIAL_DIR, Checkpoint
from .execute import ImageTask
from .outcomes import NO_IMAGE_FILE, ImageFailure, Outcomes, work_key

log = logging.getLogger(__name__)


def image_signature(path: Path) -> str:
    """Cheap change detector for an image file: ``"<size in bytes>-<mtime in ns>"``.

    Raises OSError when the file cannot be stat'ed.
    """
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


@dataclass
class EmbeddingPlan:
    """What one build run must do, decided before any image is embedded.

    ``products``, ``keys`` and ``signatures`` are aligned row by row, in catalog order.
    """

    root: Path
    """The catalog folder the ``image`` paths are relative to."""
    products: pd.DataFrame
    """Selected products as the index stores them: ``id``, attributes, ``image``,
    (``link``), ``image_signature`` (``<NA>`` without a readable file)."""
    keys: list[str]
    """Work key of each row (:func:`~fashionrec.embedding.outcomes.work_key`)."""
    signatures: list[str | None]
    """Image signature of each row (:func:`image_signature`), None without an image file."""
    missing: list[dict[str, Any]]
    """Manifest ``skipped`` entries ``{id, image, reason}`` of rows without an image file, in order."""
    existing: IndexFolder | None
    """The compatible index already in the output folder, None for a new (or damaged) one."""
    outcomes: Outcomes
    """Results reusable from ``existing`` and the checkpoint; the run adds its own."""
    todo: list[int]
    """Row positions whose image must be embedded, in order."""
    reused: int
    """Rows with an image whose result is reused."""
    up_to_date: bool
    """True when nothing is to be embedded and ``existing`` already holds exactly these products."""

    def tasks(self) -> list[ImageTask]:
        """The :class:`~fashionrec.embedding.execute.ImageTask` of each row in :attr:`todo`."""
        return [ImageTask(self.keys[i], self.root / self.products["image"].iloc[i]) for i in self.todo]


def plan_build(
    catalog: Catalog,
    out: Path,
    settings: Mapping[str, Any],
    *,
    where: Mapping[str, Any] | None,
    checkpoint: Checkpoint,
    follow_links: bool = False,
) -> EmbeddingPlan:
    """Plan the build of ``catalog`` into the index folder ``out``.

    ``catalog`` holds the selected products (``full_catalog.select(where)``);
    ``where`` is the filter that selected them, as the manifest records it.
    ``settings`` are the embedder's (:meth:`~fashionrec.embedding.ImageEmbedder.settings`).
    An image file that is a symbolic link to a file outside the catalog folder
    is skipped (a catalog from elsewhere must not make the index, and the web
    server, read files beyond it) unless ``follow_links``; see :class:`_CatalogBoundary`.
    Raises :class:`IndexFolderError` when ``out`` holds something that is not an
    index folder, or an index made with settings that cannot be mixed with these.
    """
    products = catalog.products.drop(columns=["has_image"])

    # Stat every image once: the signature keys reuse of earlier work.
    missing: list[dict[str, Any]] = []
    signatures: list[str | None] = []
    inside = _CatalogBoundary(catalog.root, follow_links)
    for pid, rel in zip(products["id"], products["image"]):
        sig, reason = None, NO_IMAGE_FILE.reason
        if not pd.isna(rel):
            path = catalog.root / rel
            refused = inside.refusal(path)
            if refused is not None:
                reason = refused
            else:
                try:
                    sig = image_signature(path)
                except OSError:
                    pass
        if sig is None:
            missing.append({"id": json_value(pid), "image": None if pd.isna(rel) else str(rel), "reason": reason})
        signatures.append(sig)
    products["image_signature"] = pd.array(signatures, dtype="string")

    existing = _existing_index(out, settings)
    outcomes = _reusable_outcomes(existing)
    outcomes.update(checkpoint.load())

    keys = [work_key(pid, sig) for pid, sig in zip(products["id"], signatures)]
    todo = [i for i, (key, sig) in enumerate(zip(keys, signatures)) if sig is not None and key not in outcomes]
    reused = sum(1 for key, sig in zip(keys, signatures) if sig is not None and key in outcomes)
    up_to_date = (
        not todo and existing is not None
        and _index_matches(existing, products, keys, outcomes, catalog.root, where)
    )
    return EmbeddingPlan(catalog.root, products, keys, signatures, missing, existing, outcomes, todo, reused, up_to_date)


class _CatalogBoundary:
    """Which image files of a catalog may be read: the catalog's own files, not links out of it.

    An image *file* that is a symbolic link is followed only when its target
    lies inside the catalog folder (both resolved). Linked *folders* are the
    user's layout (``images -> /mnt/big-disk/images``) and are followed, as is
    a catalog folder that is itself a link. With ``follow_links`` every link is followed.
    """

    def __init__(self, root: Path, follow_links: bool):
        self.root = Path(root)
        self.follow_links = follow_links
        self._resolved_root: Path | None = None

    def refusal(self, path: Path) -> str | None:
        """None when ``path`` may be read, else the reason it is skipped (the manifest's ``skipped`` text)."""
        if self.follow_links or not path.is_symlink():
            return None
        if self._resolved_root is None:
            self._resolved_root = self.root.resolve()
        target = path.resolve()
        if target.is_relative_to(self._resolved_root) or target.is_relative_to(path.parent.resolve()):
            return None
        return (f"symbolic link to a file outside the catalog folder ({target}); "
                "not read unless `fashionrec index --follow-links`")


def _existing_index(out: Path, settings: Mapping[str, Any]) -> IndexFolder | None:
    """The index already in ``out`` (same settings), None for a new or damaged one.

    A folder without a current index that holds a checkpoint (``.partial``) or
    generation folders is a build interrupted before its index was switched
    in: it resumes. Loaded without the finiteness check:
    :func:`_reusable_outcomes` drops its non-finite rows.
    """
    if not (generation_dir(out) / MANIFEST_FILE).is_file():
        resumable = has_index_traces(out)  # a checkpoint, generations, links: an unfinished or damaged index
        if out.exists() and not resumable and any(p.name != PARTIAL_DIR for p in out.iterdir()):
            raise IndexFolderError(f"{out} exists and is not an index folder; choose an empty or new --out folder")
        return None
    try:
        manifest = read_manifest(out)
    except IndexFolderError as exc:
        if is_foreign_format(out):
            raise  # another tool's or version's index: never rebuilt over
        log.warning("the index in %s is damaged (%s); rebuilding it", out, exc)
        return None
    check_compatible(manifest, settings, where=f"index {out}")
    try:
        # Rows holding a NaN or inf are left out of the reusable vectors (and so re-embedded),
        # rather than discarding the whole folder's good vectors.
        return IndexFolder.load(out, check_finite=False)
    except IndexFolderError as exc:
        log.warning("ignoring the damaged index in %s (%s); its vectors will be recomputed", out, exc)
        return None


def _reusable_outcomes(index: IndexFolder | None) -> Outcomes:
    """Vectors (and remembered failures) of an existing index, by work key; rows with a NaN or inf are left out."""
    outcomes = Outcomes()
    if index is None:
        return outcomes
    for entry in index.manifest.get("skipped", []):
        failure = ImageFailure(str(entry.get("reason", "")))
        if entry.get("signature") and not failure.retried:  # an unreadable file stays skipped until it changes
            outcomes.add_failure(work_key(entry["id"], entry["signature"]), failure)
    if "image_signature" in index.products.columns:
        bad = set(index.damaged_rows().tolist())
        if bad:
            log.warning("%s holds %d damaged vectors (NaN, inf or not matching their checksum); re-embedding those "
                        "images", index.path, len(bad))
        for row, (pid, sig, vector) in enumerate(
            zip(index.products["id"], index.products["image_signature"], index.embeddings)
        ):
            if row not in bad:
                outcomes.add_vector(work_key(pid, sig), np.array(vector))
    return outcomes


def _index_matches(
    index: IndexFolder, products: pd.DataFrame, keys: list[str], outcomes: Outcomes, root: Path,
    where: Mapping[str, Any] | None,
) -> bool:
    """True when ``index`` already holds exactly these products (its settings are checked already)."""
    catalog_info = index.manifest.get("catalog") or {}
    if catalog_info.get("root") != str(Path(root).resolve()) or catalog_info.get("where") != dict(where or {}):
        return False
    embedded = [i for i, key in enumerate(keys) if key in outcomes.vectors]
    expected = products.iloc[embedded].reset_index(drop=True)
    current = index.products
    if list(current.columns) != list(expected.columns) or len(current) != len(expected):
        return False
    return all(
        current[c].astype("string").fillna("\0").equals(expected[c].astype("string").fillna("\0"))
        for c in expected.columns
    )

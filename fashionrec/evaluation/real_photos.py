"""Real photos: does a photo of a catalog product, taken elsewhere, find that product?

A folder of photos named by product id (``15970.jpg``) is searched photo by
photo, as :meth:`~fashionrec.recommend.Recommender.similar_to_image` answers a
shopper; :func:`evaluate_photo_folder` reports hit@1, recall@k and MRR overall
and per articleType, beside a random ranking. Photos whose product is not in
the index (or not in the selection searched) are counted and left out; photos
that cannot be read are listed with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FashionrecError, ImageError, QueryError
from ..validation import check_k, check_metric
from .photo_queries import chance_metrics, rank_metrics
from .summary import PhotoClassRow, PhotoFolderSummary

if TYPE_CHECKING:
    from ..recommend import Recommender

__all__ = ["PhotoFolderResult", "evaluate_photo_folder", "photo_files"]

log = logging.getLogger(__name__)

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class PhotoFolderResult:
    """Outcome of :func:`evaluate_photo_folder` (fields as in :class:`PhotoFolderSummary`).

    ``ranks`` maps each searched photo's product id to the 1-based rank of
    its product (None past ``k``); ``found`` to the ids returned, nearest first.
    ``kind_accuracy`` is, per attribute of
    :data:`~fashionrec.recommend.kind.KIND_ATTRIBUTES`, the share of photos
    whose kind predicted from their nearest products is their product's.
    """

    folder: str
    n_photos: int
    not_in_index: int
    unreadable: list[dict[str, str]]
    n_products: int
    k: int
    match_catalog: bool
    overall: dict[str, float]
    chance: dict[str, float]
    per_class: list[dict[str, Any]]
    ranks: dict[Any, int | None] = field(default_factory=dict, repr=False)
    found: dict[Any, list[Any]] = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    kind_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return len(self.ranks)

    def summary(self) -> PhotoFolderSummary:
        """The typed ``real_photos`` block of ``evaluation.json``."""
        return PhotoFolderSummary(
            folder=self.folder, n_photos=self.n_photos, n_queries=self.n_queries, not_in_index=self.not_in_index,
            unreadable=self.unreadable, n_products=self.n_products, k=self.k, match_catalog=self.match_catalog,
            overall=self.overall, chance=self.chance,
            per_class=[PhotoClassRow(**row) for row in self.per_class], kind_accuracy=self.kind_accuracy,
            seconds=round(self.seconds, 3),
        )


def photo_files(folder: str | os.PathLike) -> list[Path]:
    """The picture files directly in ``folder``, sorted by name; FashionrecError when it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FashionrecError(f"photo folder {folder} not found; expected a folder of photos named by product id "
                              "(e.g. 15970.jpg)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file())


def evaluate_photo_folder(
    rec: Recommender,
    folder: str | os.PathLike,
    *,
    k: int = 10,
    metric: str = "euclidean",
    where: Mapping[str, Any] | None = None,
    match_catalog: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PhotoFolderResult:
    """Search the index with every photo of ``folder`` whose product it holds; how often each finds it.

    A photo's product id is its file name without the extension. ``where``
    searches within a selection (photos of products outside it are left out,
    as not in the index); ``match_catalog`` as for
    :meth:`~fashionrec.recommend.Recommender.similar_to_image`.
    ``progress(done, total)`` is called after each photo. Raises
    :class:`QueryError` when no photo of the folder is of a product searched.
    """
    started = time.perf_counter()
    k = check_k(k)
    metric = check_metric(metric)
    files = photo_files(folder)
    allowed = None
    if where:
        from ..validation import check_filter

        allowed = check_filter(where, list(rec.products.columns)).mask(rec.products)
    wanted: list[tuple[Path, Any]] = []
    not_in_index = 0
    for path in files:
        if not rec.has_product(path.stem) or (allowed is not None and not allowed[rec.row_of(path.stem)]):
            not_in_index += 1
            continue
        wanted.append((path, rec.query_product(path.stem)["id"]))
    if not wanted:
        raise QueryError(f"none of the {len(files)} photos of {folder} is of a product searched in index "
                         f"{rec.index.path}; photos must be named by product id (e.g. 15970.jpg)")
    from ..recommend.kind import KIND_ATTRIBUTES, KIND_NEIGHBOURS, predict_kind

    search_k = max(k, KIND_NEIGHBOURS)  # the nearest KIND_NEIGHBOURS also predict the photo's kind
    ranks: dict[Any, int | None] = {}
    found_ids: dict[Any, list[Any]] = {}
    right: dict[str, list[bool]] = {name: [] for name in KIND_ATTRIBUTES if name in rec.products.columns}
    unreadable: list[dict[str, str]] = []
    for done, (path, pid) in enumerate(wanted, 1):
        try:
            found = rec.similar_to_image(path, k=search_k, where=where, metric=metric, match_catalog=match_catalog)
        except ImageError as exc:
            log.warning("real photos: leaving out %s: %s", path, exc)
            unreadable.append({"file": path.name, "reason": str(exc)})
            continue
        found_ids[pid] = found["id"].tolist()[:k]
        ranks[pid] = found_ids[pid].index(pid) + 1 if pid in found_ids[pid] else None
        predicted = predict_kind(found.head(KIND_NEIGHBOURS).to_dict(orient="records"), list(right))
        truth = rec.query_product(pid)
        for name in right:
            right[name].append(truth.get(name) is not None and predicted.values[name] == truth.get(name))
        if progress:
            progress(done, len(wanted))
    if not ranks:
        raise QueryError(f"none of the photos of {folder} could be read; see the reasons logged")
    n_products = int(len(rec.products) if allowed is None else allowed.sum())
    types = rec.products["articleType"] if "articleType" in rec.products.columns else None
    per_class: list[dict[str, Any]] = []
    if types is not None:
        by_type: dict[str, list[int | None]] = {}
        for pid, rank in ranks.items():
            by_type.setdefault(str(types.iloc[rec.row_of(pid)]), []).append(rank)
        for name, group in sorted(by_type.items(), key=lambda item: (-len(item[1]), item[0])):
            per_class.append({"articleType": name, "n_queries": len(group), **rank_metrics(group, k)})
    matched = rec.match_catalog if match_catalog is None else bool(match_catalog)
    result = PhotoFolderResult(
        folder=str(folder), n_photos=len(files), not_in_index=not_in_index, unreadable=unreadable,
        n_products=n_products, k=k, match_catalog=matched, overall=rank_metrics(list(ranks.values()), k),
        chance=chance_metrics(n_products, k), per_class=per_class, ranks=ranks, found=found_ids,
        seconds=time.perf_counter() - started,
        kind_accuracy={name: float(sum(hits) / len(hits)) for name, hits in right.items() if hits},
    )
    log.info("real photos: %d of %d photos searched, hit@1 %.3f", result.n_queries, len(files),
             result.overall["hit@1"])
    return result

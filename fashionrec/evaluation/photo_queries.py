"""Photo queries: does a new photo of a catalog product find that product?

:func:`rephotograph` simulates a shopper's photo of a product from its catalog
image, in one of :data:`SIMULATIONS` ways; :func:`evaluate_photo_queries`
searches the index with such photos and records the rank at which each finds
the product it was taken of. Real photos are measured by
:mod:`.real_photos`.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import QueryError
from ..validation import check_k, check_metric
from .summary import PhotoQuerySummary

if TYPE_CHECKING:
    from PIL import Image

    from ..recommend import Recommender

__all__ = ["SIMULATIONS", "PhotoQueryResult", "evaluate_photo_queries", "rephotograph"]

SIMULATIONS: tuple[str, ...] = ("reframed", "upscaled", "squashed", "padded")
"""How simulated photos differ from the catalog image they are made from (see :func:`rephotograph`).

Real photos of catalog products are larger and often of another aspect ratio
than the catalog's thumbnails; the last three kinds give the simulated queries
those differences, so that they rank query settings as real photos do.
"""

log = logging.getLogger(__name__)


def rephotograph(image: Image.Image, rng: np.random.Generator, kind: str = "reframed") -> Image.Image:
    """Simulate a shopper's photo of a catalog product: the same item, taken elsewhere.

    ``kind`` (one of :data:`SIMULATIONS`):

    * ``reframed``: a random re-framing (crop 80–95 % of each side,
      off-centre), a small rotation (up to 8 degrees either way),
      brightness/contrast/colour-temperature changes, an off-white background
      with a margin, a different resolution (2–4x the original, as a phone
      photo is larger), a slight blur and a JPEG re-encoding;
    * ``upscaled``: the picture 2–4x larger, aspect kept, re-encoded (JPEG 70–95);
    * ``squashed``: resized to a square of 224–448 px (the aspect ratio
      changed, as square copies of a catalog's photos are), re-encoded;
    * ``padded``: padded with white to a square, then 224–448 px, re-encoded.

    Returns a new RGB image; the same ``rng`` state gives the same photo.
    """
    from PIL import Image, ImageEnhance, ImageFilter

    from ..images import to_rgb

    if kind not in SIMULATIONS:
        raise ValueError(f"unknown kind of simulated photo {kind!r}; expected one of {', '.join(SIMULATIONS)}")
    image = to_rgb(image)
    if kind != "reframed":
        return _resized_copy(image, rng, kind)
    w, h = image.size
    fw, fh = rng.uniform(0.80, 0.95, size=2)
    left = rng.uniform(0, 1 - fw) * w
    top = rng.uniform(0, 1 - fh) * h
    image = image.crop((int(left), int(top), int(left + fw * w), int(top + fh * h)))
    scale = rng.uniform(2.0, 4.0)
    image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.Resampling.BICUBIC)
    background = tuple(int(v) for v in rng.integers(225, 250, size=3))
    image = image.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=background)
    margin = int(rng.uniform(0.0, 0.15) * max(image.size))
    canvas = Image.new("RGB", (image.width + 2 * margin, image.height + 2 * margin), background)
    canvas.paste(image, (margin, margin))
    image = ImageEnhance.Brightness(canvas).enhance(float(rng.uniform(0.85, 1.15)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.85, 1.15)))
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.05, 0.05, size=3)
    pixels = np.clip(np.asarray(image, dtype=np.float32) * tint.astype(np.float32), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(50, 85)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resized_copy(image: Image.Image, rng: np.random.Generator, kind: str) -> Image.Image:
    """The ``upscaled``, ``squashed`` and ``padded`` kinds of :func:`rephotograph`."""
    from PIL import Image

    if kind == "padded":
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    if kind == "upscaled":
        scale = rng.uniform(2.0, 4.0)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    else:
        side = int(rng.integers(224, 449))
        size = (side, side)
    image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


@dataclass
class PhotoQueryResult:
    """Outcome of :func:`evaluate_photo_queries`: how often a new photo finds its product.

    ``hit@1`` is the fraction of photos whose own product ranks first, ``recall@k``
    within the top k, ``MRR`` the mean reciprocal rank (0 beyond k); ``chance``
    holds the same figures for a random ranking of the ``n_products``.
    ``ranks`` has each photo's 1-based rank of its product (None past k),
    ``kinds`` the kind of simulated photo each was (:data:`SIMULATIONS`) and
    ``per_kind`` the metrics per kind; ``match_catalog`` whether the photos
    were first made to look like catalog images; ``seconds`` is wall-clock time.
    """

    n_queries: int
    n_products: int
    k: int
    overall: dict[str, float]
    chance: dict[str, float]
    ranks: list[int | None] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    kinds: list[str] = field(default_factory=list, repr=False)
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    match_catalog: bool = True

    def summary(self) -> PhotoQuerySummary:
        """The typed ``photo_queries`` block of ``evaluation.json``."""
        return PhotoQuerySummary(
            n_queries=self.n_queries,
            n_products=self.n_products,
            k=self.k,
            overall=self.overall,
            chance=self.chance,
            per_kind=self.per_kind,
            match_catalog=self.match_catalog,
            seconds=round(self.seconds, 3),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``photo_queries`` block (plain floats, NaN as None)."""
        return self.summary().model_dump(mode="json")


def evaluate_photo_queries(
    rec: Recommender, n: int = 200, k: int = 10, seed: int = 0, metric: str = "euclidean",
    *, kinds: tuple[str, ...] = SIMULATIONS, match_catalog: bool | None = None,
) -> PhotoQueryResult:
    """Query the index with simulated new photos (:func:`rephotograph`) of ``n`` of its own products.

    ``rec`` is a :class:`~fashionrec.recommend.Recommender` whose catalog images
    are reachable. ``n`` products are drawn at random (seeded by ``seed``;
    all of them when the index has fewer); those without an openable image
    are left out. The photos take the ``kinds`` in turn. Each is searched
    among all products as :meth:`~fashionrec.recommend.Recommender.similar_to_image`
    does (``match_catalog`` as there); the rank of the product it was taken
    of is recorded. Raises :class:`QueryError` when ``n`` or ``k`` is below 1
    or no image could be opened.
    """
    from ..errors import ImageError
    from ..images import open_image

    started = time.perf_counter()
    n = check_k(n, name="the number of photo queries")
    k = check_k(k)
    metric = check_metric(metric)
    rng = np.random.default_rng(seed)
    ids = rec.products["id"].to_numpy()
    chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
    ranks: list[int | None] = []
    made: list[str] = []
    for row in chosen:
        source = rec.image_source(ids[row])
        if source is None:
            continue
        try:  # a catalog image that went missing, or a link that cannot be fetched, leaves its product out
            picture = open_image(source, allow_private_urls=rec.allow_private_urls)
        except ImageError as exc:
            log.warning("photo queries: leaving out product %s: %s", ids[row], exc)
            continue
        kind = kinds[len(made) % len(kinds)]
        photo = rephotograph(picture, rng, kind)
        found = rec.similar_to_image(photo, k=k, metric=metric, match_catalog=match_catalog)["id"].tolist()
        ranks.append(found.index(ids[row]) + 1 if ids[row] in found else None)
        made.append(kind)
    if not ranks:
        raise QueryError(f"no product image of index {rec.index.path} could be opened for photo queries")
    n_products = len(ids)
    overall = rank_metrics(ranks, k)
    per_kind = {kind: rank_metrics([r for r, m in zip(ranks, made) if m == kind], k) for kind in kinds if kind in made}
    matched = rec.match_catalog if match_catalog is None else bool(match_catalog)
    result = PhotoQueryResult(len(ranks), n_products, k, overall, chance_metrics(n_products, k), ranks,
                              time.perf_counter() - started, made, per_kind, matched)
    log.info("photo queries: %d photos, hit@1 %.3f (chance %.5f)", len(ranks), overall["hit@1"], result.chance["hit@1"])
    return result


def rank_metrics(ranks: list[int | None], k: int) -> dict[str, float]:
    """hit@1, recall@k and MRR (0 past k) of 1-based ranks (None: not in the top k)."""
    return {
        "hit@1": float(np.mean([r == 1 for r in ranks])),
        f"recall@{k}": float(np.mean([r is not None for r in ranks])),
        "MRR": float(np.mean([1.0 / r if r is not None else 0.0 for r in ranks])),
    }


def chance_metrics(n_products: int, k: int) -> dict[str, float]:
    """:func:`rank_metrics`' expected values for a uniformly random ranking of ``n_products``."""
    return {
        "hit@1": 1.0 / n_products,
        f"recall@{k}": min(k, n_products) / n_products,
        "MRR": float(sum(1.0 / r for r in range(1, min(k, n_products) + 1)) / n_products),
    }

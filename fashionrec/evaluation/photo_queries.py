"""Photo queries: does a new photo of a catalog product find that product?

:func:`rephotograph` simulates a shopper's photo of a product from its catalog
image; :func:`evaluate_photo_queries` searches the index with such photos and
records the rank at which each finds the product it was taken of.
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

__all__ = ["PhotoQueryResult", "evaluate_photo_queries", "rephotograph"]

log = logging.getLogger(__name__)


def rephotograph(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Simulate a shopper's photo of a catalog product: the same item, taken elsewhere.

    A random re-framing (crop 80–95 % of each side, off-centre), a small
    rotation (up to 8 degrees either way), brightness/contrast/colour-temperature
    changes, an off-white background with a margin, a different resolution
    (2–4x the original, as a phone photo is larger), a slight blur and a JPEG
    re-encoding. Returns a new RGB image; the same ``rng`` state gives the same photo.
    """
    from PIL import Image, ImageEnhance, ImageFilter

    from ..images import to_rgb

    image = to_rgb(image)
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


@dataclass
class PhotoQueryResult:
    """Outcome of :func:`evaluate_photo_queries`: how often a new photo finds its product.

    ``hit@1`` is the fraction of photos whose own product ranks first, ``recall@k``
    within the top k, ``MRR`` the mean reciprocal rank (0 beyond k); ``chance``
    holds the same figures for a random ranking of the ``n_products``.
    ``ranks`` has each photo's 1-based rank of its product (None past k);
    ``seconds`` is wall-clock time.
    """

    n_queries: int
    n_products: int
    k: int
    overall: dict[str, float]
    chance: dict[str, float]
    ranks: list[int | None] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    def summary(self) -> PhotoQuerySummary:
        """The typed ``photo_queries`` block of ``evaluation.json``."""
        return PhotoQuerySummary(
            n_queries=self.n_queries,
            n_products=self.n_products,
            k=self.k,
            overall=self.overall,
            chance=self.chance,
            seconds=round(self.seconds, 3),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``photo_queries`` block (plain floats, NaN as None)."""
        return self.summary().model_dump(mode="json")


def evaluate_photo_queries(
    rec: Recommender, n: int = 200, k: int = 10, seed: int = 0, metric: str = "euclidean"
) -> PhotoQueryResult:
    """Query the index with simulated new photos (:func:`rephotograph`) of ``n`` of its own products.

    ``rec`` is a :class:`~fashionrec.recommend.Recommender` whose catalog images
    are reachable. ``n`` products are drawn at random (seeded by ``seed``;
    all of them when the index has fewer); those without an openable image
    are left out. Each photo is embedded with the index's backbone and
    preprocessing and searched among all products; the rank of the product it
    was taken of is recorded. Raises :class:`QueryError` when ``n`` or ``k`` is
    below 1 or no image could be opened.
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
    for row in chosen:
        source = rec.image_source(ids[row])
        if source is None:
            continue
        try:  # a catalog image that went missing, or a link that cannot be fetched, leaves its product out
            picture = open_image(source, allow_private_urls=rec.allow_private_urls)
        except ImageError as exc:
            log.warning("photo queries: leaving out product %s: %s", ids[row], exc)
            continue
        photo = rephotograph(picture, rng)
        found = rec.similar_to_image(photo, k=k, metric=metric)["id"].tolist()
        ranks.append(found.index(ids[row]) + 1 if ids[row] in found else None)
    if not ranks:
        raise QueryError(f"no product image of index {rec.index.path} could be opened for photo queries")
    hits = np.array([r is not None for r in ranks])
    reciprocal = np.array([1.0 / r if r is not None else 0.0 for r in ranks])
    n_products = len(ids)
    overall = {
        "hit@1": float(np.mean([r == 1 for r in ranks])),
        f"recall@{k}": float(hits.mean()),
        "MRR": float(reciprocal.mean()),
    }
    chance = {
        "hit@1": 1.0 / n_products,
        f"recall@{k}": min(k, n_products) / n_products,
        "MRR": float(sum(1.0 / r for r in range(1, min(k, n_products) + 1)) / n_products),
    }
    result = PhotoQueryResult(len(ranks), n_products, k, overall, chance, ranks, time.perf_counter() - started)
    log.info("photo queries: %d photos, hit@1 %.3f (chance %.5f)", len(ranks), overall["hit@1"], chance["hit@1"])
    return result

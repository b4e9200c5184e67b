"""What a catalog's images look like — size, JPEG compression, background — and photos brought to that look.

A catalog such as the Kaggle one holds small thumbnails (60 × 80 px, JPEG at
quality 75, white background); a shopper brings a photo ten to thirty times
larger. Features of the same product differ more between those two renderings
than between two products, so a photo query is first made to look like a
catalog image (:meth:`CatalogLook.apply`): composited onto the catalog's
background, resized to the catalog's typical size, and JPEG-encoded as the
catalog's images are. Then it is preprocessed like the catalog images.

:meth:`CatalogLook.measure` reads the look from a sample of the catalog's
image files (their headers, their JPEG quantisation tables and their corner
pixels); the index records it in its manifest (``catalog_look``).
"""

from __future__ import annotations

import io
import logging
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

RESAMPLING = "lanczos"
"""Filter that brings a photo to the catalog's size: it measured best on real photos (README, "Quality")."""

_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
            "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}

# The IJG (libjpeg) luminance quantisation table at quality 50, row by row (the order Pillow reports tables in).
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


@dataclass(frozen=True)
class CatalogLook:
    """The typical catalog image: ``width`` × ``height`` px, JPEG ``quality`` (None: not JPEG), ``background`` RGB.

    ``subsampling`` is the JPEG chroma subsampling as Pillow names it (0:
    4:4:4, 1: 4:2:2, 2: 4:2:0); ``share`` the fraction of the sampled images
    that have exactly the typical size, and ``sampled`` how many were read.
    """

    width: int
    height: int
    quality: int | None = None
    subsampling: int | None = None
    background: tuple[int, int, int] = (255, 255, 255)
    share: float = 1.0
    sampled: int = 0

    def __post_init__(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CatalogLook {name} must be a whole number of pixels >= 1, got {value!r}")
        if self.quality is not None and not (isinstance(self.quality, int) and 1 <= self.quality <= 100):
            raise ValueError(f"CatalogLook quality must be a JPEG quality 1..100 or None, got {self.quality!r}")

    def apply(self, picture: Image.Image, *, resampling: str = RESAMPLING) -> Image.Image:
        """``picture`` as a catalog image: on the background, at the catalog's size, JPEG-encoded like it.

        The photo is resized to exactly ``width`` × ``height`` (its aspect is
        not kept: photos of catalog products are mostly the catalog's own
        portrait photos re-framed to another aspect, and stretching them back
        measured best), then encoded as the catalog's thumbnails were. A
        picture already of the catalog's size is taken for a catalog image and
        not re-encoded (that would only add a generation of JPEG loss).
        Returns a new RGB image; ``picture`` is left as it is.
        """
        image = _on_background(picture, self.background)
        if image.size == (self.width, self.height):
            return image
        image = image.resize((self.width, self.height), _FILTERS[resampling], reducing_gap=None)
        if self.quality is None:
            return image
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=self.quality,
                   subsampling=self.subsampling if self.subsampling is not None else -1)
        buffer.seek(0)
        with Image.open(buffer) as encoded:
            return encoded.convert("RGB")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``background`` as a list), as the manifest keeps it."""
        out = asdict(self)
        out["background"] = list(self.background)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogLook:
        """From :meth:`to_dict`'s output; ValueError names a field of the wrong type."""
        try:
            return cls(width=data["width"], height=data["height"], quality=data.get("quality"),
                       subsampling=data.get("subsampling"),
                       background=tuple(int(c) for c in data.get("background") or (255, 255, 255)),
                       share=float(data.get("share", 1.0)), sampled=int(data.get("sampled", 0)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"catalog_look {dict(data)!r}: expected width, height, quality, background ({exc})") from None

    @classmethod
    def measure(cls, paths: Sequence[str | os.PathLike], *, sample: int = 500, seed: int = 0) -> CatalogLook | None:
        """The look of the images at ``paths``, from ``sample`` of them drawn with ``seed`` (all when fewer).

        Size and JPEG settings are the most common ones; the background the
        most common corner colour. Files that cannot be read are passed over;
        None when none can.
        """
        paths = list(paths)
        if len(paths) > sample:
            paths = random.Random(seed).sample(paths, sample)
        sizes: Counter = Counter()
        jpeg: Counter = Counter()
        corners: Counter = Counter()
        read = 0
        for path in paths:
            try:
                with Image.open(path) as image:
                    sizes[image.size] += 1
                    jpeg[_jpeg_settings(image)] += 1
                    corners[_corner(image)] += 1
                    read += 1
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                log.debug("catalog look: passing over %s: %s", path, exc)
        if not read:
            return None
        (width, height), count = sizes.most_common(1)[0]
        quality, subsampling = jpeg.most_common(1)[0][0]
        return cls(width=width, height=height, quality=quality, subsampling=subsampling,
                   background=corners.most_common(1)[0][0], share=count / read, sampled=read)


def _on_background(picture: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB ``picture``, transparent parts filled with ``background`` (as catalog photos are shot on it)."""
    if picture.mode in ("RGBA", "LA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return picture.convert("RGB")


def _jpeg_settings(image: Image.Image) -> tuple[int | None, int | None]:
    """(quality, subsampling) of a JPEG file as the IJG encoder would name them; (None, None) for other formats."""
    if image.format != "JPEG" or not getattr(image, "quantization", None):
        return None, None
    from PIL import JpegImagePlugin

    table = tuple(image.quantization[0])
    if len(table) != 64:
        return None, None
    sampling = JpegImagePlugin.get_sampling(image)
    return _quality_of(table), (sampling if sampling in (0, 1, 2) else None)


@lru_cache(maxsize=64)
def _quality_of(table: tuple[int, ...]) -> int:
    """The IJG quality whose scaled luminance table is closest to ``table`` (a catalog shares one or a few)."""

    def scaled(quality: int) -> list[int]:  # libjpeg's jpeg_quality_scaling, baseline tables
        factor = 5000 // quality if quality < 50 else 200 - 2 * quality
        return [min(255, max(1, (v * factor + 50) // 100)) for v in _IJG_LUMINANCE]

    return min(range(1, 101), key=lambda q: sum(abs(a - b) for a, b in zip(scaled(q), table)))


def _corner(image: Image.Image) -> tuple[int, int, int]:
    """The top-left pixel's RGB (decoded at a reduced scale for large JPEGs)."""
    if image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    rgb = image.convert("RGB")
    return tuple(rgb.getpixel((0, 0)))  # type: ignore[return-value]

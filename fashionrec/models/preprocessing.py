"""How a PIL image becomes a backbone's input: :class:`Preprocessing` and :func:`preprocess`.

A :class:`Preprocessing` (part of every registered backbone, and of every index
manifest) fully describes the transform; :func:`preprocess` applies it and is
driven by it alone. :func:`draft_target` tells JPEG decoders how small they may
decode before :func:`preprocess` without changing its result.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np
from PIL import Image

from ..errors import BackboneError
from ..images import to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet per-channel mean (R, G, B) of pixel values scaled to 0..1."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet per-channel standard deviation (R, G, B) of pixel values scaled to 0..1."""

_MODES = ("crop", "pad")
_INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocessing:
    """How a PIL image becomes a normalised float32 ``(3, input_size, input_size)`` array.

    ``mode="crop"``: resize the shorter side to ``resize_size`` (aspect kept), then
    centre-crop ``input_size`` (the torchvision/timm evaluation transform).
    ``mode="pad"``: pad the image to a square with ``pad_fill`` (image centred),
    then resize to ``input_size``; keeps the whole product of portrait photos.
    ``resize_size`` is only used by ``"crop"``.

    Sizes are in pixels (1..4096); ``interpolation`` is ``"bilinear"`` or
    ``"bicubic"``; ``mean`` and ``std`` are per channel (R, G, B) on pixel values
    scaled to 0..1, so the output is ``(pixel / 255 - mean) / std``; ``pad_fill`` is
    an (R, G, B) colour in 0..255. Invalid values raise :class:`BackboneError`
    quoting the value received and what was expected. Frozen and hashable.
    """

    input_size: int = 224
    resize_size: int = 256
    mode: str = "crop"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_fill: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        def fail(what: str, got: Any, expected: str) -> None:
            raise BackboneError(f"invalid preprocessing {what}: got {got!r}, expected {expected}")

        for name in ("input_size", "resize_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 4096:
                fail(name, v, "an integer between 1 and 4096")
            object.__setattr__(self, name, int(v))
        if self.mode == "crop" and self.resize_size < self.input_size:
            fail("resize_size", self.resize_size, f">= input_size ({self.input_size}) in crop mode")
        if self.mode not in _MODES:
            fail("mode", self.mode, f"one of {', '.join(_MODES)}")
        if self.interpolation not in _INTERPOLATIONS:
            fail("interpolation", self.interpolation, f"one of {', '.join(_INTERPOLATIONS)}")
        for name in ("mean", "std", "pad_fill"):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 3:
                fail(name, v, "a sequence of 3 numbers (R, G, B)")
            try:
                if name == "pad_fill":
                    if any(isinstance(x, bool) or int(x) != x or not 0 <= x <= 255 for x in v):
                        raise ValueError
                    t = tuple(int(x) for x in v)
                else:
                    t = tuple(float(x) for x in v)
                    if not all(np.isfinite(t)):
                        raise ValueError
            except (TypeError, ValueError):
                expected = "3 integers in 0..255" if name == "pad_fill" else "3 finite numbers"
                fail(name, v, expected)
            if name == "std" and any(x <= 0 for x in t):
                fail(name, v, "3 positive numbers")
            object.__setattr__(self, name, t)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocessing":
        """Inverse of :meth:`to_dict`; unknown or missing keys raise :class:`BackboneError`."""
        if not isinstance(d, Mapping):
            raise BackboneError(f"invalid preprocessing: got {type(d).__name__}, expected a mapping")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise BackboneError(f"invalid preprocessing: unknown keys {unknown}, expected keys {names}")
        required = [f.name for f in fields(cls) if f.name != "pad_fill"]
        missing = [k for k in required if k not in d]
        if missing:
            raise BackboneError(f"invalid preprocessing: missing keys {missing}, expected keys {names}")
        return cls(**dict(d))


def draft_target(p: Preprocessing) -> tuple[int, int]:
    """Size to pass to ``Image.draft("RGB", size)`` before :func:`preprocess`.

    ``draft`` picks the smallest JPEG DCT scale whose result is at least this size
    in both dimensions, so the pre-crop resize never upsamples from a reduced
    decode: ``resize_size`` for "crop" (the shorter side is resized to it), and
    ``input_size`` for "pad".
    """
    s = p.resize_size if p.mode == "crop" else p.input_size
    return (s, s)


def preprocess(image: Image.Image, p: Preprocessing) -> np.ndarray:
    """PIL image -> float32 ``(3, p.input_size, p.input_size)``, normalised with ``p.mean/std``.

    Resizing uses PIL's ``Image.resize`` with the configured filter; PIL
    antialiases when downsampling (its filters widen with the scale), which is
    what torchvision's ``Resize`` does on PIL images. "crop" follows torchvision:
    shorter side -> ``resize_size`` (longer side truncated to int), centre crop
    with rounded offsets.
    """
    image = to_rgb(image)
    resample = _INTERPOLATIONS[p.interpolation]
    s = p.input_size
    w, h = image.size
    if p.mode == "crop":
        r = p.resize_size
        if w <= h:
            nw, nh = r, int(r * h / w)
        else:
            nw, nh = int(r * w / h), r
        left = int(round((nw - s) / 2.0))
        top = int(round((nh - s) / 2.0))
        # Resize-then-crop in one step: resample only the crop window, given in
        # source coordinates. Pillow's filter still reads source pixels outside
        # the box, so the result matches resizing the whole image and cropping
        # (to within one or two 8-bit levels, from rounding) at a third less work.
        sx, sy = w / nw, h / nh
        box = (left * sx, top * sy, (left + s) * sx, (top + s) * sy)
        image = image.resize((s, s), resample, box=box)
    else:
        side = max(w, h)
        if w != h:
            canvas = Image.new("RGB", (side, side), p.pad_fill)
            canvas.paste(image, ((side - w) // 2, (side - h) // 2))
            image = canvas
        if side != s:
            image = image.resize((s, s), resample)
    # (x / 255 - mean) / std as one multiply-add per element, channels first.
    scale, bias = _normalisation(p)
    out = np.empty((3, s, s), dtype=np.float32)
    np.multiply(np.asarray(image).transpose(2, 0, 1), scale, out=out)
    out += bias
    return out


@functools.lru_cache(maxsize=16)
def _normalisation(p: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``scale, bias`` with ``(x / 255 - mean) / std == x * scale + bias``."""
    mean = np.asarray(p.mean, np.float64)
    std = np.asarray(p.std, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(3, 1, 1)
    bias = (-mean / std).astype(np.float32).reshape(3, 1, 1)
    return scale, bias

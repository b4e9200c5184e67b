"""The ``resnet50`` backbone (the default): torchvision ResNet50 with its ImageNet weights.

torchvision's ``IMAGENET1K_V1`` weights are used unchanged and the classifier
is replaced by identity, so the network returns the 2048-d global-average-pooled
feature. The weights come from torchvision's download cache
(``$TORCH_HOME/hub/checkpoints``, see :func:`resnet50_cache_path`), downloaded
there once. When they are not cached and :data:`RESNET50_HOST` is unreachable,
loading fails within seconds with a :class:`BackboneError` pointing at
``--weights PATH`` and the offline backbone ``efficientnet_lite0``. A local
torchvision- or timm-layout state-dict file may be given instead
(``--weights``); with or without its ``fc`` layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BackboneError
from ..network import reachable
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .registry import BackboneConfig, register_backbone
from .weights import check_materialised, file_sha256, load_strict, read_state_dict

RESNET50_HOST = ("download.pytorch.org", 443)
"""(host, port) probed before downloading the weights, so an offline machine fails fast."""

TORCHVISION_IDENTITY = "torchvision:ResNet50_Weights.IMAGENET1K_V1"
"""Weights identity of torchvision's ImageNet weights (file-given weights are identified by checksum)."""


def resnet50_cache_path() -> Path:
    """Where torchvision caches the IMAGENET1K_V1 checkpoint (honours ``TORCH_HOME``)."""
    import torch
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_resnet50(weights_path: Path | None, classifier: bool = False):
    """``(module in eval mode, weights identity)``: features ``(N, 2048)``, or logits ``(N, 1000)`` with ``classifier``."""
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    with torch.device("meta"):
        model = resnet50(weights=None)
    if weights_path is not None:
        sd = read_state_dict(weights_path, "resnet50")
        if not classifier and "fc.weight" not in sd and "fc.bias" not in sd:
            model.fc = torch.nn.Identity()  # a headless (e.g. timm num_classes=0) file
        load_strict(model, sd, weights_path, "resnet50", "torchvision/timm resnet50")
        identity = f"file-sha256:{file_sha256(weights_path)}"
    else:
        w = ResNet50_Weights.IMAGENET1K_V1
        cached = resnet50_cache_path()
        if not cached.is_file() and not reachable(*RESNET50_HOST):
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
        check_materialised(model, cached)
        identity = TORCHVISION_IDENTITY
    if not classifier:
        model.fc = torch.nn.Identity()
    return model.eval(), identity


register_backbone(BackboneConfig(
    name="resnet50",
    dim=2048,
    preprocessing=Preprocessing(input_size=224, resize_size=256, mode="crop",
                                interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD),
    weights="torchvision ResNet50_Weights.IMAGENET1K_V1 (downloaded once to the torch hub cache)",
    licence="BSD-3-Clause (torchvision); weights trained on ImageNet-1k",
    description="ResNet50, 2048-d global-average-pooled features",
    build=lambda path: build_resnet50(path, classifier=False),
    build_classifier=lambda path: build_resnet50(path, classifier=True),
    # fastest fp32 runtime first (benchmarks/RESULTS.md); bf16 unverified without the real weights
    auto_runtimes=("onnxruntime", "openvino"),
))

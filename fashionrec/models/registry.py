"""The backbone registry: which feature extractors exist, and how to build one.

A backbone is one :class:`BackboneConfig` passed to :func:`register_backbone`.
Each family module registers its own (``resnet.py``: ``resnet50``;
``efficientnet.py``: ``efficientnet_lite0``), and importing
:mod:`fashionrec.models` imports them, so the built-in backbones are registered
whenever the registry is reachable. Adding a backbone is one module with its
build function and one ``register_backbone(BackboneConfig(...))`` call, imported
from ``fashionrec/models/__init__.py`` (or from your own code, before use).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import BackboneError
from .preprocessing import Preprocessing
from .weights import resolve_weights_path

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "resnet50"
"""The backbone used when none is named: the original design's ResNet50."""

Builder = Callable[[Path | None], "tuple[Any, str]"]
"""``build(weights_path_or_None) -> (torch module in eval mode, weights identity)``."""


@dataclass(frozen=True)
class BackboneConfig:
    """One registered backbone.

    ``name``: registry key. ``dim``: feature size D. ``preprocessing``: how an image
    becomes the float32 ``(3, S, S)`` input (``S = preprocessing.input_size``).
    ``weights``, ``licence``, ``description``: one line each, for people
    (``fashionrec backbones``).

    ``build(weights_path_or_None)`` returns ``(module, weights_identity)``: the
    module, in eval mode, maps float32 ``(N, 3, S, S)`` to float32 ``(N, dim)``
    pooled features; ``weights_identity`` is a string that identifies the weights
    loaded (an index records it and refuses vectors of other weights). ``None``
    means the backbone's standard weights. ``build_classifier`` (optional) returns
    the same network with its ImageNet classifier, mapping to ``(N, 1000)`` logits
    (used to check that weights are real).

    ``auto_runtimes``: the fp32 runtimes ``FeatureExtractor(runtime="auto")`` tries
    for this backbone, fastest first (PyTorch is always the last resort);
    ``auto_precision``: the precision ``auto`` uses where a runtime offers it
    ("fp32", or "bf16" once its features are measured to meet the cosine bar).
    """

    name: str
    dim: int
    preprocessing: Preprocessing
    weights: str
    licence: str
    description: str
    build: Builder = field(repr=False, compare=False)
    build_classifier: Builder | None = field(default=None, repr=False, compare=False)
    auto_runtimes: tuple[str, ...] = ("openvino", "onnxruntime")
    auto_precision: str = "fp32"


_REGISTRY: dict[str, BackboneConfig] = {}
_REGISTRY_LOCK = threading.Lock()


def register_backbone(config: BackboneConfig) -> BackboneConfig:
    """Add ``config`` to the registry and return it; a name already registered raises :class:`BackboneError`."""
    if not isinstance(config, BackboneConfig):
        raise BackboneError(f"register_backbone expects a BackboneConfig; got {type(config).__name__}")
    with _REGISTRY_LOCK:
        if config.name in _REGISTRY:
            raise BackboneError(f"backbone {config.name!r} is already registered")
        _REGISTRY[config.name] = config
    return config


def list_backbones() -> list[BackboneConfig]:
    """The registered backbones, in registration order (built-ins first)."""
    return list(_REGISTRY.values())


def get_backbone(name: str) -> BackboneConfig:
    """The config registered as ``name``; an unknown name raises :class:`BackboneError` listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise BackboneError(f"unknown backbone {name!r}; expected one of: {known}") from None


def load_model(name: str, weights: str | Path | None = None):
    """Build backbone ``name`` -> ``(module in eval mode, weights_identity)``.

    The module maps float32 ``(N, 3, S, S)`` to float32 ``(N, dim)``.
    ``weights`` is an optional local state-dict file; ``None`` uses the
    backbone's standard weights. Never falls back to random weights: weights that
    cannot be found or loaded raise :class:`BackboneError`.
    """
    config = get_backbone(name)
    model, identity = config.build(resolve_weights_path(weights))
    log.info("loaded backbone %s (%s)", name, identity)
    return model.eval(), identity


def load_classifier(name: str, weights: str | Path | None = None):
    """Like :func:`load_model`, but the module returns ImageNet logits ``(N, 1000)``."""
    config = get_backbone(name)
    if config.build_classifier is None:
        raise BackboneError(f"backbone {name!r} has no classifier head; expected one of: "
                            + ", ".join(c.name for c in list_backbones() if c.build_classifier))
    model, identity = config.build_classifier(resolve_weights_path(weights))
    return model.eval(), identity

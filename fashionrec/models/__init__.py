"""Stage 2a — models: backbones (weights, preprocessing, feature size) and the runtimes that run them.

* :mod:`.preprocessing`: :class:`Preprocessing`, :func:`preprocess`, :func:`draft_target`;
* :mod:`.registry`: :class:`BackboneConfig`, :func:`register_backbone`, :func:`get_backbone`,
  :func:`list_backbones`, :func:`load_model`, :func:`load_classifier`;
* :mod:`.weights`: state-dict files (reading, strict loading, checksums);
* :mod:`.resnet`, :mod:`.efficientnet`: one backbone family each, registered on import;
* :mod:`.runtimes`: :class:`FeatureExtractor` and the runtimes it runs a backbone on.

Importing this package registers the built-in backbones and imports neither
PyTorch nor any runtime: they load when a model is built.
"""

# Importing a family module registers its backbones (resnet50 first: the default).
from . import resnet  # noqa: F401  isort: skip
from . import efficientnet  # noqa: F401  isort: skip
from .preprocessing import Preprocessing, draft_target, preprocess
from .registry import (
    DEFAULT_BACKBONE,
    BackboneConfig,
    get_backbone,
    list_backbones,
    load_classifier,
    load_model,
    register_backbone,
)
from .runtimes import COSINE_BAR, PRECISIONS, RUNTIMES, FeatureExtractor

__all__ = [
    "COSINE_BAR", "DEFAULT_BACKBONE", "PRECISIONS", "RUNTIMES", "BackboneConfig", "FeatureExtractor", "Preprocessing",
    "draft_target", "get_backbone", "list_backbones", "load_classifier", "load_model", "preprocess", "register_backbone",
]

"""Runtimes that run a backbone on CPU, and :class:`FeatureExtractor`, which picks one.

* :mod:`.base`: the :class:`Runtime` interface, :class:`Session`, the shared ONNX export;
* :mod:`.torch`, :mod:`.onnxruntime`, :mod:`.openvino`: one runtime each;
* :mod:`.registry`: the runtimes by name (:data:`RUNTIMES`, :func:`get_runtime`);
* :mod:`.extractor`: :class:`FeatureExtractor` (what ``auto`` picks, the export
  cache, the probe check against PyTorch), :data:`COSINE_BAR`.
"""

from .base import PRECISIONS, Runtime, Session
from .extractor import COSINE_BAR, FeatureExtractor, cosine_rows
from .registry import RUNTIME_CLASSES, RUNTIMES, get_runtime

__all__ = ["COSINE_BAR", "PRECISIONS", "RUNTIMES", "RUNTIME_CLASSES", "FeatureExtractor", "Runtime", "Session",
           "cosine_rows", "get_runtime"]

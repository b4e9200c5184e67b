"""The runtimes by name: one class each, looked up here (adding a runtime is one module and one entry)."""

from __future__ import annotations

from ...errors import BackboneError
from .base import Runtime
from .onnxruntime import OnnxRuntime
from .openvino import OpenVINORuntime
from .torch import TorchRuntime

RUNTIME_CLASSES: dict[str, type[Runtime]] = {cls.name: cls for cls in (TorchRuntime, OnnxRuntime, OpenVINORuntime)}
"""Runtime name -> class. PyTorch first: it is the reference."""

RUNTIMES: tuple[str, ...] = tuple(RUNTIME_CLASSES)
"""Runtime names: ``("torch", "onnxruntime", "openvino")``."""


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``; an unknown name raises :class:`BackboneError` listing the known ones."""
    try:
        return RUNTIME_CLASSES[name]()
    except (KeyError, TypeError):
        raise BackboneError(f"unknown runtime {name!r}; expected one of: auto, "
                            + ", ".join(RUNTIMES)) from None

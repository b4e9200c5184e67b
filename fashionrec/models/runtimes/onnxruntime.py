"""The ONNX Runtime runtime: the ONNX export run by ONNX Runtime's CPU provider, fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Runtime, export_onnx


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` as a :class:`~.base.Session` (its ``run`` is thread-safe)."""

    precision = "fp32"

    def __init__(self, session: Any) -> None:
        self._session = session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"input": batch})[0]


class OnnxRuntime(Runtime):
    """``runtime="onnxruntime"``: cache entry ``<stem>.onnx``, one file."""

    name: ClassVar[str] = "onnxruntime"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx")
    entry_suffix: ClassVar[str] = ".onnx"

    def export(self, module: Any, config: Any, dest: Path) -> None:
        export_onnx(module, config.preprocessing.input_size, dest)

    def open(self, model: Path, precision: str, threads: int) -> OnnxRuntimeSession:
        """Session with ``threads`` intra-op threads, one inter-op thread, all graph optimisations."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return OnnxRuntimeSession(ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"]))

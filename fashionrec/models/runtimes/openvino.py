"""The OpenVINO runtime: the ONNX export converted to an fp32 OpenVINO IR, run in fp32 or bf16.

The IR is saved with ``compress_to_fp16=False``; the inference precision is a
compile-time hint (``INFERENCE_PRECISION_HINT``), so one cached IR serves both
precisions. bf16 is faster on CPUs that have it, but less exact (see
:mod:`fashionrec.models.runtimes.extractor` for when it is used).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Runtime, export_onnx

log = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16"}
_REPORTED = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


@functools.lru_cache(maxsize=1)
def openvino_supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 on this machine (False if OpenVINO fails)."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


class OpenVINOSession:
    """A compiled OpenVINO model as a :class:`~.base.Session`.

    An ``InferRequest`` serves one inference at a time, so each call borrows an
    idle request from this session's pool (creating one when all are busy) and
    returns it afterwards: concurrent calls never share a request.
    """

    def __init__(self, compiled: Any, precision: str) -> None:
        self._compiled = compiled
        self.precision = precision
        self._idle: list[Any] = [compiled.create_infer_request()]
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            request = self._idle.pop() if self._idle else self._compiled.create_infer_request()
        try:
            out = request.infer({0: batch})
            # copy: the output tensor belongs to the request, which the next call reuses
            return np.array(next(iter(out.values())), dtype=np.float32, copy=True)
        finally:
            with self._lock:
                self._idle.append(request)


class OpenVINORuntime(Runtime):
    """``runtime="openvino"``: cache entry ``<stem>.openvino/`` holding ``model.xml`` and ``model.bin``."""

    name: ClassVar[str] = "openvino"
    requires: ClassVar[tuple[str, ...]] = ("openvino", "onnx")
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    entry_suffix: ClassVar[str] = ".openvino"

    def runs_natively(self, precision: str) -> bool:
        return precision == "fp32" or (precision == "bf16" and openvino_supports_bf16())

    def model_file(self, entry: Path) -> Path:
        return entry / "model.xml"

    def is_complete(self, entry: Path) -> bool:
        xml = self.model_file(entry)
        return xml.is_file() and xml.with_suffix(".bin").is_file()

    def export(self, module: Any, config: Any, dest: Path) -> None:
        import openvino as ov

        with tempfile.TemporaryDirectory(prefix=".onnx-", dir=dest.parent) as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(module, config.preprocessing.input_size, onnx_path)
            dest.mkdir()
            ov.save_model(ov.convert_model(str(onnx_path)), str(self.model_file(dest)), compress_to_fp16=False)

    def open(self, model: Path, precision: str, threads: int) -> OpenVINOSession:
        """Compile for CPU with ``INFERENCE_NUM_THREADS=threads``, the precision hint, ``LATENCY``.

        The session's ``precision`` is what OpenVINO reports it compiled for
        (fp32 where bf16 was asked on a CPU without it; a warning is logged).
        """
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(model)), "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
        })
        hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")
        actual = getattr(hint_type, "get_type_name", lambda: str(hint_type))()
        actual = _REPORTED.get(actual, precision)
        if actual != precision:
            log.warning("OpenVINO compiled %s at %s, not the requested %s", model, actual, precision)
        return OpenVINOSession(compiled, actual)

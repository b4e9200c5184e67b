"""The interface every runtime implements, and the ONNX export they share.

A :class:`Runtime` runs a backbone's network on CPU. Runtimes other than
PyTorch run a model exported once from the PyTorch module: :meth:`Runtime.export`
writes it (one file or one folder, the cache *entry*), :meth:`Runtime.open`
loads it into a :class:`Session`, a callable mapping a float32 batch
``(N, 3, S, S)`` to float32 features ``(N, dim)``. Exported models have their
spatial size ``S`` fixed at export; only the batch axis is dynamic.

Sessions are safe to call from many threads at once.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

PRECISIONS = ("fp32", "bf16")
"""Inference precisions a runtime may offer (each runtime lists its own in ``Runtime.precisions``)."""

ONNX_OPSET = 17
"""ONNX opset of exported models."""


class Session(Protocol):
    """A loaded model: ``session(batch)`` maps float32 ``(N, 3, S, S)`` to float32 ``(N, dim)``.

    ``precision`` is the precision it actually computes in, as the runtime
    reports it (it may differ from the one requested where the CPU lacks it).
    Calls may come from many threads at once.
    """

    precision: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class Runtime(ABC):
    """One way of running a backbone; stateless, so instances are cheap and shareable.

    Class attributes:

    * ``name``: the name users pass (``--runtime``).
    * ``requires``: Python packages it imports (checked by :meth:`is_available`).
    * ``precisions``: the precisions :meth:`open` accepts.
    * ``needs_export``: ``False`` for a runtime that runs the PyTorch module
      itself (then :meth:`open` takes the module, and any spatial size works).
    * ``entry_suffix``: the cache entry of an exported model is ``<stem><entry_suffix>``.
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    needs_export: ClassVar[bool] = True
    entry_suffix: ClassVar[str] = ""

    @classmethod
    def is_available(cls) -> bool:
        """Whether every package of ``requires`` imports in this process."""
        for package in cls.requires:
            try:
                importlib.import_module(package)
            except ImportError:
                return False
        return True

    def runs_natively(self, precision: str) -> bool:
        """Whether this CPU runs ``precision`` natively (fp32 always does). ``auto`` only picks such precisions."""
        return precision == "fp32"

    # -- exported models ---------------------------------------------------- #
    def cache_entry(self, cache_dir: Path, stem: str) -> Path:
        """Where the exported model named ``stem`` lives in ``cache_dir`` (a file or a folder)."""
        return cache_dir / f"{stem}{self.entry_suffix}"

    def model_file(self, entry: Path) -> Path:
        """The file :meth:`open` reads, inside (or equal to) a cache ``entry``."""
        return entry

    def is_complete(self, entry: Path) -> bool:
        """Whether ``entry`` holds every file of an exported model (it may still be corrupt: the probe check tells)."""
        return entry.is_file()

    def export(self, module: Any, config: Any, dest: Path) -> None:
        """Export the torch ``module`` of backbone ``config`` (a BackboneConfig) to the new entry ``dest``.

        ``dest`` does not exist yet; its folder does. The module is left as it
        was. Callers write to a temporary ``dest`` and move it into place.
        """
        raise NotImplementedError(f"runtime {self.name} runs the PyTorch module; it exports nothing")

    @abstractmethod
    def open(self, model: Any, precision: str, threads: int) -> Session:
        """Load ``model`` (an exported model file, or the torch module when ``needs_export`` is false).

        ``threads`` is the number of intra-op threads of this session only;
        nothing process-wide is changed.
        """


def export_onnx(module: Any, input_size: int, dest: Path) -> None:
    """Write ``module`` as ONNX to ``dest``: input ``input`` ``(batch, 3, S, S)``, output ``features``.

    Uses the legacy TorchScript exporter (``dynamo=False``, works offline without
    ``onnxscript``), opset :data:`ONNX_OPSET`, dynamic batch axis, ``S = input_size``.
    Exports a contiguous-format copy, so ``module`` is left untouched.
    """
    import torch

    model = copy.deepcopy(module).to(memory_format=torch.contiguous_format)
    with torch.no_grad(), warnings.catch_warnings():
        # legacy-exporter deprecation notice and timm "SAME"-padding TracerWarnings:
        # the spatial size is fixed at export, only the batch axis is dynamic
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, input_size, input_size),), str(dest), dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["input"], output_names=["features"],
                          dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})

"""The PyTorch runtime: the reference every other runtime is checked against.

Runs the module eagerly in ``channels_last`` memory format under
``torch.inference_mode``, in fp32. Its thread count is PyTorch's own
(``torch.set_num_threads``), which belongs to the calling program: this runtime
never changes it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import Runtime


class TorchSession:
    """A torch module in eval mode as a :class:`~.base.Session` (fp32; any spatial size)."""

    precision = "fp32"

    def __init__(self, module: Any) -> None:
        self._module = module

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._module(x).float().numpy()


class TorchRuntime(Runtime):
    """``runtime="torch"``: the PyTorch module itself; no export, fp32 only."""

    name: ClassVar[str] = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    needs_export: ClassVar[bool] = False

    def open(self, model: Any, precision: str, threads: int) -> TorchSession:
        """Wrap the torch ``model`` (converted to ``channels_last`` in place); ``threads`` is not used.

        PyTorch's thread count is process-wide, so it stays the caller's to set.
        """
        import torch

        return TorchSession(model.to(memory_format=torch.channels_last))

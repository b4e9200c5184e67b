"""Importing FAISS so that it runs its fast kernels, and saying which kernels run.

The ``faiss-cpu`` wheels bundle their own OpenBLAS, older than NumPy's. On CPUs
newer than that OpenBLAS it may detect a generic core ("Prescott": SSE3 only)
and run its matrix products several times slower than NumPy on the same
machine (benchmarks/RESULTS.md has the measurement). OpenBLAS reads the
``OPENBLAS_CORETYPE`` environment variable when the library loads, so
:func:`import_faiss` sets it — only when the user has not — to the core NumPy's
own OpenBLAS detected, translated to a name the bundled one knows, before FAISS
is first imported. :func:`kernel_report` tells what was detected and chosen.

The engines also keep the heaviest products in NumPy (projections, coarse
assignment, exact re-ranking), so a misdetection can slow building, never the
answers.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_faiss: Any = None
_coretype_set: str | None = None

# Core names an OpenBLAS of 2021 (0.3.15, bundled by faiss-cpu) understands, and
# what newer names map to. NumPy's OpenBLAS reports names such as "SapphireRapids".
_KNOWN_CORES = {"Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "SkylakeX", "Cooperlake", "Zen",
                "Atom", "Barcelona", "Bulldozer", "Piledriver", "Steamroller", "Excavator"}
_NEWER_CORES = {"SapphireRapids": "Cooperlake", "Icelake": "SkylakeX", "Tigerlake": "SkylakeX",
                "Cascadelake": "SkylakeX", "Alderlake": "Haswell", "Zen4": "SkylakeX", "Zen5": "SkylakeX"}


def _numpy_blas() -> dict[str, Any]:
    """threadpoolctl's description of the BLAS NumPy uses ({} when it cannot be told)."""
    try:
        import numpy  # noqa: F401  (loads NumPy's BLAS, so that threadpoolctl sees it)
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return {}
    for info in threadpool_info():
        path = str(info.get("filepath", ""))
        if info.get("user_api") == "blas" and "faiss" not in path:
            return info
    return {}


def _coretype_for_faiss() -> str | None:
    """The OPENBLAS_CORETYPE to give FAISS's bundled OpenBLAS, from NumPy's detection; None to leave it."""
    arch = str(_numpy_blas().get("architecture") or "")
    if arch in _KNOWN_CORES:
        return arch
    return _NEWER_CORES.get(arch)


def import_faiss():
    """The ``faiss`` module, imported once with the fast BLAS kernels (see the module docstring).

    Raises ImportError when faiss-cpu is not installed.
    """
    global _faiss, _coretype_set
    if _faiss is not None:
        return _faiss
    with _lock:
        if _faiss is None:
            if "OPENBLAS_CORETYPE" not in os.environ:
                coretype = _coretype_for_faiss()
                if coretype:
                    os.environ["OPENBLAS_CORETYPE"] = coretype  # read once, when FAISS's OpenBLAS loads
                    _coretype_set = coretype
            import faiss

            _faiss = faiss
            if _coretype_set:
                os.environ.pop("OPENBLAS_CORETYPE", None)  # only for that library: leave the environment as it was
    return _faiss


def kernel_report() -> dict[str, Any]:
    """Which kernels FAISS and NumPy run here: SIMD level, BLAS library, version and detected core."""
    faiss = import_faiss()
    report: dict[str, Any] = {
        "faiss_version": faiss.__version__,
        "faiss_simd": faiss.get_compile_options().strip(),
        "faiss_blas_core_set": _coretype_set,
    }
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            if info.get("user_api") != "blas":
                continue
            who = "faiss_blas" if "faiss" in str(info.get("filepath", "")) else "numpy_blas"
            report[who] = f"{info.get('internal_api')} {info.get('version')} ({info.get('architecture')})"
    except ImportError:  # pragma: no cover
        pass
    return report

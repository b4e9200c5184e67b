""":class:`FeatureExtractor`: a registered backbone on the runtime that suits it.

Accuracy bar: stored features must match PyTorch fp32 to a cosine of at least
:data:`COSINE_BAR` (0.999) on every image.

``runtime="auto"`` tries, in order:

1. the backbone's ``auto_precision`` when it is not fp32, on the runtimes of its
   ``auto_runtimes`` that offer it and that this CPU runs natively (OpenVINO
   bf16 on CPUs with bf16). No built-in backbone uses this today: bf16 is
   faster but fell below the bar on EfficientNet-Lite0's product photos, and
   ResNet50's bf16 can only be checked with its real ImageNet weights.
   ``precision="bf16"`` opts in explicitly.
2. the backbone's ``auto_runtimes`` in fp32, fastest first as measured for that
   backbone (OpenVINO for ``efficientnet_lite0``, ONNX Runtime for ``resnet50``);
   all fp32 runtimes meet the bar.
3. PyTorch, the reference.

A runtime whose packages are missing is left out; one whose model cannot be
exported, loaded, or fails the probe check is skipped with a warning. The
measured figures behind these choices are in ``benchmarks/RESULTS.md``
(``python benchmarks/embed.py``).

Exported models are cached in ``cache_dir``, else
:func:`fashionrec.settings.models_cache_dir` (``$FASHIONREC_CACHE/models``);
names are keyed by backbone, weights identity, input size and runtime, and are
written atomically (a temporary entry, then ``os.replace``), so concurrent
processes and killed exports never leave a half-written model in place. Each
time a model is loaded, its output on a fixed probe batch is compared with
PyTorch's; a cached model that fails to load or to match is exported again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackboneError
from ...settings import available_cpus, models_cache_dir
from ..registry import DEFAULT_BACKBONE, BackboneConfig, get_backbone, load_model
from .base import PRECISIONS, Runtime, Session
from .registry import RUNTIME_CLASSES, RUNTIMES, get_runtime
from .torch import TorchRuntime

log = logging.getLogger(__name__)

COSINE_BAR = 0.999
"""Least per-image cosine between stored features and PyTorch fp32 features that a default may give."""

PROBE_COSINE = 0.99
"""Least cosine to PyTorch on the probe batch when a model is loaded: catches corrupt or wrong models, not precision loss."""

EXPORT_FORMAT = "v1"
"""Part of every cached model's name; bumped when the export recipe changes, so old exports are not reused."""


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` (N, D) with the same row of ``b`` -> float64 (N,)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)


def probe_batch(config: BackboneConfig, n: int = 2) -> np.ndarray:
    """A fixed, image-like float32 batch ``(n, 3, S, S)`` (smooth gradients and a block), normalised as ``config`` says."""
    p = config.preprocessing
    s = p.input_size
    y, x = np.mgrid[0:s, 0:s].astype(np.float32) / max(s - 1, 1)
    imgs = []
    for k in range(n):
        r = 0.5 + 0.5 * np.sin(6.0 * x + k)
        g = y
        b = ((x > 0.3) & (x < 0.7) & (y > 0.2) & (y < 0.8)).astype(np.float32) * (0.3 + 0.4 * k)
        img = np.stack([r, g, b])
        img = (img - np.asarray(p.mean, np.float32)[:, None, None]) / np.asarray(p.std, np.float32)[:, None, None]
        imgs.append(img)
    return np.ascontiguousarray(np.stack(imgs), dtype=np.float32)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


@dataclass(frozen=True)
class _Loaded:
    """Everything :meth:`FeatureExtractor.load` decides, published in one assignment."""

    session: Session
    runtime: Runtime
    precision: str
    weights_identity: str


class FeatureExtractor:
    """Backbone features on CPU: float32 ``(N, 3, S, S)`` batches -> float32 ``(N, dim)``.

    ``backbone``: a registered backbone name. ``weights``: a local state-dict file,
    or ``None`` for the backbone's own weights.
    ``runtime``: ``"auto"`` (see the module docstring), ``"torch"``,
    ``"onnxruntime"`` or ``"openvino"``.
    ``precision``: ``None`` (the backbone's ``auto_precision`` with ``"auto"``, fp32
    otherwise), ``"fp32"`` or ``"bf16"`` (OpenVINO only; faster, below the
    0.999 cosine bar on some images). :attr:`precision` says what was used.
    ``cache_dir``: folder of exported models (default
    :func:`fashionrec.settings.models_cache_dir`).
    ``num_threads``: intra-op threads of this extractor's ONNX Runtime session or
    OpenVINO model (default: the CPUs this process may use). The PyTorch runtime
    uses PyTorch's own thread setting, which is process-wide and therefore the
    caller's to set (``torch.set_num_threads``); nothing here changes it.

    Construction checks the arguments and does no other work; the model is built
    on the first call or by :meth:`load`. An extractor may be called from many
    threads at once (e.g. a web server's pool) and gives the same answers as
    when called from one; loading happens once, under a lock of this object.
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, weights: str | Path | None = None,
                 runtime: str = "auto", cache_dir: Path | str | None = None,
                 num_threads: int | None = None, precision: str | None = None) -> None:
        if runtime != "auto":
            get_runtime(runtime)  # unknown name -> BackboneError listing the known ones
        if precision is not None and precision not in PRECISIONS:
            raise BackboneError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
        if precision is not None and runtime != "auto" and precision not in RUNTIME_CLASSES[runtime].precisions:
            offering = [name for name, cls in RUNTIME_CLASSES.items() if precision in cls.precisions]
            raise BackboneError(f"precision {precision!r} is supported by runtime {', '.join(offering)} only; "
                                f"got runtime {runtime!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise BackboneError(f"num_threads must be a positive integer; got {num_threads!r}")
        self.backbone = backbone
        self.weights = weights
        self.runtime = runtime
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.num_threads = num_threads
        self.requested_precision = precision
        self.exports = 0  # models this extractor exported (cache misses)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    # -- what was chosen ---------------------------------------------------- #
    @property
    def config(self) -> BackboneConfig:
        """The backbone's registered config (:class:`BackboneError` if unknown)."""
        return get_backbone(self.backbone)

    @property
    def dim(self) -> int:
        """Feature size D."""
        return self.config.dim

    @property
    def weights_identity(self) -> str:
        """The identity string of the weights loaded (loads the model)."""
        return self._ensure_loaded().weights_identity

    @property
    def runtime_name(self) -> str:
        """The runtime in use: "torch", "onnxruntime" or "openvino" (loads the model)."""
        return self._ensure_loaded().runtime.name

    @property
    def precision(self) -> str:
        """The precision in use, as the runtime reports it (loads the model)."""
        return self._ensure_loaded().precision

    @property
    def threads(self) -> int:
        """Intra-op threads given to ONNX Runtime or OpenVINO."""
        return self.num_threads or available_cpus()

    @property
    def model_cache_dir(self) -> Path:
        """Folder of exported models: ``cache_dir``, else :func:`fashionrec.settings.models_cache_dir`."""
        return self.cache_dir if self.cache_dir is not None else models_cache_dir()

    def cache_path(self, runtime: str) -> Path:
        """The exported model file ``runtime`` opens (loads the model to know the weights' identity).

        ``<cache>/<stem>.onnx`` for ONNX Runtime; ``<cache>/<stem>.openvino/model.xml``
        (beside ``model.bin``) for OpenVINO.
        """
        rt = get_runtime(runtime)
        if not rt.needs_export:
            raise BackboneError(f"runtime {runtime!r} has no cached model; expected one of: "
                                + ", ".join(n for n, c in RUNTIME_CLASSES.items() if c.needs_export))
        return rt.model_file(self._cache_entry(rt, self.weights_identity))

    # -- loading ------------------------------------------------------------ #
    def load(self) -> FeatureExtractor:
        """Build the model now (idempotent, thread-safe); returns ``self``."""
        self._ensure_loaded()
        return self

    def _ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        config = self.config
        plan = self._plan(config)
        model, identity = load_model(config.name, self.weights)
        reference = TorchRuntime().open(model, "fp32", self.threads)
        errors = []
        for runtime, precision in plan:
            try:
                session = self._open(runtime, precision, model, identity, reference)
            except BackboneError as exc:
                if self.runtime != "auto":
                    raise
                errors.append(f"{runtime.name}: {exc}")
                log.warning("runtime %s unusable (%s); trying the next one", runtime.name, exc)
                continue
            log.info("feature extractor %s: runtime %s %s, %s", config.name, runtime.name, session.precision,
                     f"{self.threads} threads" if runtime.needs_export else "PyTorch's threads")
            return _Loaded(session, runtime, session.precision, identity)
        raise BackboneError(f"no runtime could run backbone {config.name}: {'; '.join(errors)}")

    def _plan(self, config: BackboneConfig) -> list[tuple[Runtime, str]]:
        """Candidate (runtime, precision) pairs, best first (see the module docstring)."""
        if self.runtime != "auto":
            runtime = get_runtime(self.runtime)
            if not runtime.is_available():
                raise BackboneError(f"runtime {self.runtime!r} needs the Python packages "
                                    f"{' and '.join(runtime.requires)}, which are not installed; "
                                    "expected them installed, or use runtime 'torch'")
            return [(runtime, self.requested_precision or "fp32")]
        for name in config.auto_runtimes:
            if name not in RUNTIME_CLASSES:
                raise BackboneError(f"backbone {config.name} lists unknown runtime {name!r} in auto_runtimes; "
                                    f"expected names from: {', '.join(RUNTIMES)}")
        candidates = [r for r in (get_runtime(name) for name in config.auto_runtimes) if r.is_available()]
        wanted = self.requested_precision or config.auto_precision
        plan = []
        if wanted != "fp32":
            plan = [(r, wanted) for r in candidates if wanted in r.precisions and r.runs_natively(wanted)]
        if not plan or self.requested_precision is None:
            plan += [(r, "fp32") for r in candidates]
            plan.append((TorchRuntime(), "fp32"))
        return plan

    def _open(self, runtime: Runtime, precision: str, model: Any, identity: str, torch_session: Session) -> Session:
        """A session of ``runtime``; an exported one must match ``torch_session`` on the probe batch."""
        if not runtime.needs_export:
            return runtime.open(model, precision, self.threads)
        probe = probe_batch(self.config)
        reference = torch_session(probe)
        entry = self._cache_entry(runtime, identity)
        for attempt in range(2):
            fresh = False
            try:
                if not runtime.is_complete(entry):
                    self._export(runtime, model, entry)
                    fresh = True
                session = runtime.open(runtime.model_file(entry), precision, self.threads)
                got = session(probe)
                cos = cosine_rows(got, reference) if got.shape == reference.shape else np.zeros(1)
                if got.shape != reference.shape or not np.all(cos >= PROBE_COSINE):
                    raise BackboneError(f"{runtime.name} output on the probe batch does not match PyTorch "
                                        f"(shape {got.shape}, cosine {np.round(cos, 4).tolist()}; expected "
                                        f"shape {reference.shape}, cosine >= {PROBE_COSINE})")
                return session
            except Exception as exc:
                if fresh or attempt == 1:
                    if isinstance(exc, BackboneError):
                        raise
                    raise BackboneError(f"runtime {runtime.name} failed for backbone "
                                        f"{self.config.name}: {type(exc).__name__}: {exc}") from exc
                log.warning("cached %s model for %s is unusable (%s); re-exporting", runtime.name,
                            self.config.name, exc)
                _remove(entry)
        raise AssertionError("unreachable")

    # -- cache -------------------------------------------------------------- #
    def _cache_entry(self, runtime: Runtime, identity: str) -> Path:
        s = self.config.preprocessing.input_size
        stem = _safe(f"{self.config.name}-{identity}-{s}px-{runtime.name}-{EXPORT_FORMAT}")
        return runtime.cache_entry(self.model_cache_dir, stem)

    def _export(self, runtime: Runtime, model: Any, entry: Path) -> None:
        """Export into a temporary entry beside ``entry``, then move it into place."""
        entry.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s for %s to %s", self.config.name, runtime.name, entry)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=entry.parent))
        try:
            staged = tmp / entry.name
            runtime.export(model, self.config, staged)
            if entry.is_dir():  # an incomplete folder: os.replace cannot replace a non-empty one
                shutil.rmtree(entry, ignore_errors=True)
            try:
                os.replace(staged, entry)
            except OSError:
                if not runtime.is_complete(entry):  # else another process just exported it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.exports += 1

    # -- inference ---------------------------------------------------------- #
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, S, S)`` -> float32 ``(N, dim)``; ``S`` must be the backbone's input size
        except with the PyTorch runtime."""
        loaded = self._ensure_loaded()
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 3:
            got = batch.shape if isinstance(batch, np.ndarray) else type(batch).__name__
            raise BackboneError(f"feature batch must be an array (N, 3, S, S); got {got}")
        s = self.config.preprocessing.input_size
        if loaded.runtime.needs_export and batch.shape[2:] != (s, s):
            raise BackboneError(f"feature batch for {self.config.name} must be (N, 3, {s}, {s}); "
                                f"got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return np.ascontiguousarray(loaded.session(batch), dtype=np.float32)


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    elif entry.exists():
        entry.unlink()

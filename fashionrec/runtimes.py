"""Fast CPU inference for registered backbones: PyTorch, ONNX Runtime, OpenVINO.

:class:`FeatureExtractor` runs a backbone on preprocessed float32 batches
``(N, 3, S, S)`` and returns float32 ``(N, dim)`` features. PyTorch (eager,
channels_last, ``torch.inference_mode``) is the reference. The other runtimes
run a model exported once from the PyTorch module and cached on disk:

* ONNX: legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``,
  opset 17, dynamic batch axis) -- works offline without ``onnxscript``.
* OpenVINO: ``ov.convert_model`` of that ONNX file, saved with
  ``ov.save_model(..., compress_to_fp16=False)`` (fp32 IR). The inference
  precision is a compile-time hint, so one IR serves fp32 and bf16.

Accuracy bar: features must match PyTorch fp32 with cosine >= 0.999 per image.
Measured with ``benchmarks/embed.py`` on a 2-core Xeon with AMX/AVX512-bf16,
143 images (127 product photos from fashion-product-images-small + 16
skimage.data images), per-image cosine vs PyTorch fp32:

==================  ===============  ===========  ===========
backbone            runtime          min cosine   mean cosine
==================  ===============  ===========  ===========
efficientnet_lite0  ORT fp32         1.000000     1.000000
efficientnet_lite0  OpenVINO fp32    1.000000     1.000000
efficientnet_lite0  OpenVINO bf16    0.994114     0.999002   <- fails the bar
resnet50 (*)        ORT / OV fp32    1.000000     1.000000
resnet50 (*)        OpenVINO bf16    0.999988     0.999991
==================  ===============  ===========  ===========

(*) random-init weights: the ImageNet checkpoint could not be downloaded here
(offline), and random-init networks are not representative of bf16 error, so
resnet50 bf16 is NOT trusted yet. Re-measure with
``python benchmarks/embed.py --resnet50-weights resnet50-0676ba61.pth`` and
set ``AUTO_PRECISION["resnet50"] = "bf16"`` only if min cosine >= 0.999.

Throughput (images/s, batch 32, 224 px, 2 threads, best of 6-12 runs). The
machine was shared with other jobs (load average 4-5 on 2 cores), so absolute
numbers are 2-4x low and noisy; two runs, ratios are what matter:

==================  =====  ====  =======  =======
backbone            torch  ORT   OV fp32  OV bf16
==================  =====  ====  =======  =======
efficientnet_lite0  46/11  124/30  176/51  176/121
resnet50            18/7   18/13   10/13   25/74
==================  =====  ====  =======  =======

lite0 bf16 on 300 more product photos: min 0.994, mean 0.9991, 25% of images
below 0.999 -- so bf16 is not used by default for lite0.

``runtime="auto"`` therefore picks, in order: OpenVINO bf16 only for backbones
whose ``AUTO_PRECISION`` is bf16 (none today) on CPUs with bf16, then OpenVINO
fp32 (``INFERENCE_PRECISION_HINT=f32``), then ONNX Runtime, then PyTorch; a
runtime whose package is missing is skipped. ``precision="bf16"`` with
``runtime="openvino"`` opts in to the faster, slightly less exact mode.

Exported models live in ``cache_dir``, else ``$FASHIONREC_CACHE``, else
``~/.cache/fashionrec/models``; names are keyed by backbone, weights identity,
input size and runtime, and are written atomically (temp file/folder, then
``os.replace``). On load the runtime's output on a fixed probe batch is compared
with PyTorch; a cached model that fails to load or to match is re-exported.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .backbones import DEFAULT_BACKBONE, BackboneConfig, get_backbone, load_model
from .errors import BackboneError

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
COSINE_BAR = 0.999
# Probe check on load: catches corrupt / wrong cached models, not precision loss.
_PROBE_COSINE = 0.99
_EXPORT_FORMAT = "v1"  # bump when the export recipe changes

# Precision "auto" uses with OpenVINO, per backbone (measured; see module docstring).
# Backbones not listed get fp32.
AUTO_PRECISION: dict[str, str] = {"resnet50": "fp32", "efficientnet_lite0": "fp32"}

AUTO_FP32_ORDER: dict[str, tuple[str, ...]] = {
    # benchmarks/embed.py, batch 32, 2 cores: ORT 35 vs OpenVINO 27 img/s on resnet50,
    # OpenVINO 155 vs ORT 123 img/s on efficientnet_lite0.
    "resnet50": ("onnxruntime", "openvino"),
    "efficientnet_lite0": ("openvino", "onnxruntime"),
}
"""fp32 runtimes ``auto`` tries, fastest first, per backbone (others: OpenVINO first)."""

_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
_lock = threading.RLock()


def default_cache_dir() -> Path:
    env = os.environ.get("FASHIONREC_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fashionrec" / "models"


def default_num_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def runtime_available(runtime: str) -> bool:
    if runtime == "torch":
        return True
    try:
        if runtime == "onnxruntime":
            import onnx  # noqa: F401  (needed by the exporter)
            import onnxruntime  # noqa: F401
        elif runtime == "openvino":
            import onnx  # noqa: F401
            import openvino  # noqa: F401
        else:
            return False
    except ImportError:
        return False
    return True


def openvino_supports_bf16() -> bool:
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        return False


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-12)


def _probe_batch(config: BackboneConfig, n: int = 2) -> np.ndarray:
    """A fixed, image-like batch (smooth gradients + blocks, normalised)."""
    s = config.preprocessing.input_size
    p = config.preprocessing
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


class FeatureExtractor:
    """Backbone features on CPU with a chosen runtime.

    ``runtime``: "auto" | "torch" | "onnxruntime" | "openvino".
    ``precision``: None (per-backbone default for "auto", fp32 otherwise),
    "fp32" or "bf16" (OpenVINO only). Construction does no work; the model is
    built on first call or :meth:`load`.
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, weights: str | Path | None = None,
                 runtime: str = "auto", cache_dir: Path | str | None = None,
                 num_threads: int | None = None, precision: str | None = None) -> None:
        self.backbone = backbone
        self.weights = weights
        self.runtime = runtime
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.num_threads = num_threads
        self.requested_precision = precision
        self._config: BackboneConfig | None = None
        self._torch_model = None
        self._weights_identity: str | None = None
        self._runtime_name: str | None = None
        self._precision: str | None = None
        self._run = None
        self._actual_precision: str | None = None  # what OpenVINO reports it compiled for
        self.exports = 0  # number of exports this instance performed (cache misses)

    # -- properties --------------------------------------------------------- #
    @property
    def config(self) -> BackboneConfig:
        if self._config is None:
            self._config = get_backbone(self.backbone)
        return self._config

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def weights_identity(self) -> str:
        self.load()
        assert self._weights_identity is not None
        return self._weights_identity

    @property
    def runtime_name(self) -> str:
        self.load()
        assert self._runtime_name is not None
        return self._runtime_name

    @property
    def precision(self) -> str:
        self.load()
        assert self._precision is not None
        return self._precision

    @property
    def threads(self) -> int:
        return self.num_threads or default_num_threads()

    @property
    def model_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()

    # -- loading ------------------------------------------------------------ #
    def _validate_args(self) -> None:
        if self.runtime != "auto" and self.runtime not in RUNTIMES:
            raise BackboneError(f"unknown runtime {self.runtime!r}; expected one of: auto, "
                                + ", ".join(RUNTIMES))
        if self.requested_precision is not None and self.requested_precision not in PRECISIONS:
            raise BackboneError(f"unknown precision {self.requested_precision!r}; expected one "
                                f"of: {', '.join(PRECISIONS)}")
        if self.requested_precision == "bf16" and self.runtime not in ("auto", "openvino"):
            raise BackboneError(f"precision 'bf16' is supported by runtime openvino only; "
                                f"got runtime {self.runtime!r}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int)
                                             or self.num_threads < 1):
            raise BackboneError(f"num_threads must be a positive integer; got {self.num_threads!r}")

    def _plan(self) -> list[tuple[str, str]]:
        """Candidate (runtime, precision) pairs, best first."""
        if self.runtime != "auto":
            if not runtime_available(self.runtime):
                raise BackboneError(f"runtime {self.runtime!r} needs the Python packages "
                                    f"{_PACKAGES[self.runtime]} and onnx, which are not installed; "
                                    f"expected them installed, or use runtime 'torch'")
            return [(self.runtime, self.requested_precision or "fp32")]
        ov_prec = self.requested_precision or AUTO_PRECISION.get(self.backbone, "fp32")
        if ov_prec == "bf16" and not openvino_supports_bf16():
            ov_prec = "fp32"
        plan = []
        if runtime_available("openvino") and ov_prec == "bf16":
            plan.append(("openvino", "bf16"))
        if not plan or self.requested_precision != "bf16":
            for rt in AUTO_FP32_ORDER.get(self.backbone, ("openvino", "onnxruntime")):
                if runtime_available(rt):
                    plan.append((rt, "fp32"))
            plan.append(("torch", "fp32"))
        return plan

    def load(self) -> "FeatureExtractor":
        """Build the model now (idempotent)."""
        if self._run is not None:
            return self
        with _lock:
            if self._run is not None:
                return self
            self._validate_args()
            config = self.config
            import torch

            torch.set_num_threads(self.threads)
            model, identity = load_model(config.name, self.weights)
            self._torch_model = model.to(memory_format=torch.channels_last)
            self._weights_identity = identity
            errors = []
            for runtime, precision in self._plan():
                try:
                    self._run = self._build(runtime, precision)
                except BackboneError as exc:
                    if self.runtime != "auto":
                        raise
                    errors.append(f"{runtime}: {exc}")
                    log.warning("runtime %s unusable (%s); trying the next one", runtime, exc)
                    continue
                self._runtime_name = runtime
                self._precision = self._actual_precision or precision
                break
            log.info("feature extractor %s: runtime %s %s, %d threads", config.name,
                     self._runtime_name, self._precision, self.threads)
        return self

    def _cache_stem(self, runtime: str) -> str:
        s = self.config.preprocessing.input_size
        return _safe(f"{self.config.name}-{self._weights_identity}-{s}px-{runtime}-{_EXPORT_FORMAT}")

    def _torch_features(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._torch_model(x).float().numpy()

    def _build(self, runtime: str, precision: str):
        if runtime == "torch":
            return self._torch_features
        probe = _probe_batch(self.config)
        reference = self._torch_features(probe)
        for attempt in range(2):
            fresh = False
            try:
                path = self._cached_path(runtime)
                if path is None:
                    path = self._export(runtime)
                    fresh = True
                run = self._open(runtime, path, precision)
                got = run(probe)
                cos = _cosine_rows(got, reference)
                if got.shape != reference.shape or not np.all(cos >= _PROBE_COSINE):
                    raise BackboneError(f"{runtime} output on the probe batch does not match "
                                        f"PyTorch (cosine {np.round(cos, 4).tolist()}, expected "
                                        f">= {_PROBE_COSINE})")
                return run
            except Exception as exc:
                if fresh or attempt == 1:
                    if isinstance(exc, BackboneError):
                        raise
                    raise BackboneError(f"runtime {runtime} failed for backbone "
                                        f"{self.config.name}: {type(exc).__name__}: {exc}") from exc
                log.warning("cached %s model for %s is unusable (%s); re-exporting", runtime,
                            self.config.name, exc)
                self._remove_cached(runtime)
        raise AssertionError("unreachable")

    # -- cache -------------------------------------------------------------- #
    def cache_path(self, runtime: str) -> Path:
        """Where the exported model for ``runtime`` is cached (after :meth:`load`)."""
        if self._weights_identity is None:
            self.load()
        stem = self._cache_stem(runtime)
        if runtime == "onnxruntime":
            return self.model_cache_dir / f"{stem}.onnx"
        if runtime == "openvino":
            return self.model_cache_dir / f"{stem}.openvino" / "model.xml"
        raise BackboneError(f"runtime {runtime!r} has no cached model; expected onnxruntime or openvino")

    def _cached_path(self, runtime: str) -> Path | None:
        path = self.cache_path(runtime)
        if runtime == "openvino":
            return path if path.is_file() and path.with_suffix(".bin").is_file() else None
        return path if path.is_file() else None

    def _remove_cached(self, runtime: str) -> None:
        path = self.cache_path(runtime)
        target = path.parent if runtime == "openvino" else path
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()

    def _export_onnx_to(self, dest: Path) -> None:
        import torch

        s = self.config.preprocessing.input_size
        model = self._torch_model.to(memory_format=torch.contiguous_format)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # legacy-exporter deprecation notice and timm "SAME"-padding TracerWarnings:
                # the spatial size is fixed at export, only the batch axis is dynamic
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.zeros(1, 3, s, s),), str(dest), dynamo=False,
                                  opset_version=17, input_names=["input"],
                                  output_names=["features"],
                                  dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})
        finally:
            self._torch_model = model.to(memory_format=torch.channels_last)

    def _export(self, runtime: str) -> Path:
        final = self.cache_path(runtime)
        cache = self.model_cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s for %s to %s", self.config.name, runtime, final)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=cache))
        try:
            onnx_path = tmp / "model.onnx"
            self._export_onnx_to(onnx_path)
            if runtime == "onnxruntime":
                os.replace(onnx_path, final)
            else:
                import openvino as ov

                ov_dir = tmp / "ov"
                ov_dir.mkdir()
                ov.save_model(ov.convert_model(str(onnx_path)), str(ov_dir / "model.xml"),
                              compress_to_fp16=False)
                if final.parent.exists():
                    shutil.rmtree(final.parent, ignore_errors=True)
                try:
                    os.replace(ov_dir, final.parent)
                except OSError:
                    if not final.is_file():  # else another process just exported it
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.exports += 1
        return final

    def _open(self, runtime: str, path: Path, precision: str):
        n = self.threads
        if runtime == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = n
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

            def run(batch: np.ndarray) -> np.ndarray:
                return sess.run(None, {"input": batch})[0]

            return run
        import openvino as ov

        core = ov.Core()
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_NUM_THREADS": n,
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
        })
        request = compiled.create_infer_request()
        hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")
        actual = getattr(hint_type, "get_type_name", lambda: str(hint_type))()
        self._actual_precision = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(actual, precision)
        if self._actual_precision != precision:
            log.warning("OpenVINO compiled %s at %s, not the requested %s", self.config.name,
                        self._actual_precision, precision)

        def run(batch: np.ndarray) -> np.ndarray:
            out = request.infer({0: batch})
            return np.array(next(iter(out.values())), dtype=np.float32, copy=True)

        return run

    # -- inference ---------------------------------------------------------- #
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, S, S)`` -> float32 ``(N, dim)``."""
        self.load()
        s = self.config.preprocessing.input_size
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 3:
            got = batch.shape if isinstance(batch, np.ndarray) else type(batch).__name__
            raise BackboneError(f"feature batch must be an array (N, 3, S, S); got {got}")
        if self._runtime_name != "torch" and batch.shape[2:] != (s, s):
            raise BackboneError(f"feature batch for {self.config.name} must be (N, 3, {s}, {s}); "
                                f"got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        out = self._run(batch)
        return np.ascontiguousarray(out, dtype=np.float32)

"""Stage 2 — embeddings: product images in, feature vectors out.

Two entry points:

* :class:`ImageEmbedder` turns PIL images into (n, D) float32 features with a
  registered backbone and its own preprocessing (used for photo queries).
* :func:`build_index` embeds a catalog selection into an index folder
  (:mod:`fashionrec.index`): images are decoded on worker threads while the
  model runs, finished work is checkpointed every few hundred images so an
  interrupted run (Ctrl-C, kill -9) resumes where it stopped, unreadable images
  are skipped and reported, and a re-run embeds only new or changed images.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .catalog import Catalog
from .errors import FashionrecError, IndexFolderError
from .index import MANIFEST_FILE, IndexFolder, check_compatible, read_manifest, write_index
from .output import atomic_write, json_value

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
"""Checkpoint folder inside an index folder while a build is in progress."""

CHECKPOINT_EVERY = 256
"""Images embedded between two checkpoints: at most this much work is lost to kill -9."""

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)``, called after each batch."""


# --------------------------------------------------------------------------- one image


def load_image_array(path: str | os.PathLike, preprocessing) -> np.ndarray:
    """Decode one image file and preprocess it into a (3, S, S) float32 array.

    Large JPEGs are decoded in draft mode at the pre-crop size (not at full
    resolution), which is several times cheaper. Raises OSError/ValueError
    subclasses for unreadable files; the caller decides to skip.
    """
    from .backbones import draft_target, preprocess

    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", draft_target(preprocessing))
        image.load()
        return preprocess(image, preprocessing)


class ImageEmbedder:
    """Backbone + preprocessing + runtime: PIL images to feature vectors.

    Parameters
    ----------
    backbone: registered backbone name (see ``fashionrec.backbones``).
    weights: local weights file, or None for the backbone's own weights.
    preprocessing: override of the backbone's preprocessing (e.g. ``mode="pad"``);
        None uses the backbone's default.
    runtime: "auto", "torch", "onnxruntime" or "openvino".
    precision: None (fp32; see ``fashionrec.runtimes``) or "bf16" (OpenVINO only:
        faster, but below the 0.999 cosine bar for some images).
    """

    def __init__(
        self,
        backbone: str | None = None,
        weights: str | os.PathLike | None = None,
        preprocessing=None,
        runtime: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        precision: str | None = None,
    ):
        self.backbone = backbone
        self.weights = weights
        self.preprocessing_override = preprocessing
        self.runtime = runtime
        self.precision = precision
        self.cache_dir = cache_dir
        self.expected_weights: str | None = None  # set by from_manifest: refuse other weights
        self._extractor = None

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, weights: str | os.PathLike | None = None, runtime: str = "auto"
    ) -> ImageEmbedder:
        """An embedder that reproduces an index's vectors (same backbone, weights, preprocessing)."""
        from .backbones import Preprocessing

        if weights is None and manifest.get("weights_path") and Path(manifest["weights_path"]).is_file():
            weights = manifest["weights_path"]
        embedder = cls(
            manifest["backbone"],
            weights=weights,
            preprocessing=Preprocessing.from_dict(manifest["preprocessing"]),
            runtime=runtime,
        )
        embedder.expected_weights = manifest["weights"]
        return embedder

    @property
    def extractor(self):
        """The loaded :class:`~fashionrec.runtimes.FeatureExtractor` (built on first use)."""
        if self._extractor is None:
            from .backbones import DEFAULT_BACKBONE
            from .runtimes import FeatureExtractor

            extractor = FeatureExtractor(
                self.backbone or DEFAULT_BACKBONE, weights=self.weights, runtime=self.runtime,
                cache_dir=self.cache_dir, precision=self.precision,
            )
            extractor.load()
            if self.expected_weights and extractor.weights_identity != self.expected_weights:
                raise IndexFolderError(
                    f"weights {extractor.weights_identity!r} differ from the index's {self.expected_weights!r}; "
                    "pass --weights with the file the index was built with"
                )
            self._extractor = extractor
        return self._extractor

    @property
    def config(self):
        from .backbones import DEFAULT_BACKBONE, get_backbone

        return get_backbone(self.backbone or DEFAULT_BACKBONE)

    @property
    def preprocessing(self):
        return self.preprocessing_override or self.config.preprocessing

    @property
    def dim(self) -> int:
        return self.config.dim

    def settings(self) -> dict[str, Any]:
        """The manifest fields that identify these vectors."""
        extractor = self.extractor
        settings = {
            "backbone": self.config.name,
            "weights": extractor.weights_identity,
            "weights_path": str(Path(self.weights).resolve()) if self.weights else None,
            "preprocessing": self.preprocessing.to_dict(),
            "dim": self.dim,
            "runtime": extractor.runtime_name,
            "precision": extractor.precision,
        }
        # JSON round trip: compare equal to what a manifest on disk holds (lists, not tuples).
        return json.loads(json.dumps(settings))

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) preprocessed float32 → (N, D) float32."""
        return np.asarray(self.extractor(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images → (len(images), D) float32 features."""
        from .backbones import preprocess

        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self.embed_arrays(np.stack([preprocess(image, self.preprocessing) for image in images]))


# --------------------------------------------------------------------------- a whole catalog


@dataclass
class IndexRunSummary:
    """What one :func:`build_index` run did."""

    path: Path
    count: int  # vectors in the index now
    embedded: int  # images embedded by this run
    reused: int  # vectors kept from earlier runs or checkpoints
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {id, image, reason}
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)
    unchanged: bool = False  # nothing to do: index already up to date

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def image_signature(path: Path) -> str:
    """Cheap change detector for an image file: size and modification time."""
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def build_index(
    catalog: Catalog,
    out: str | os.PathLike,
    *,
    embedder: ImageEmbedder | None = None,
    where: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> IndexRunSummary:
    """Embed the catalog products selected by ``where`` into the index folder ``out``.

    Resumable and incremental: vectors already in ``out`` (same id, same image
    file) or in its checkpoint folder are reused; only the rest is embedded.
    Products without an image file or with an unreadable one are skipped and
    listed in the summary and the manifest.
    """
    started = time.perf_counter()
    out = Path(out)
    embedder = embedder or ImageEmbedder()
    if batch_size < 1:
        raise FashionrecError(f"batch size must be at least 1, got {batch_size}")
    workers = workers or min(4, os.cpu_count() or 1)

    selected = catalog.select(where)
    products = selected.products.drop(columns=["has_image"])
    settings = embedder.settings()  # loads the model: fails fast on missing weights

    # Stat every image once: the signature keys reuse of earlier work.
    skipped: list[dict[str, Any]] = []
    signatures: list[str | None] = []
    for pid, rel in zip(products["id"], products["image"]):
        sig = None
        if not pd.isna(rel):
            try:
                sig = image_signature(catalog.root / rel)
            except OSError:
                pass
        if sig is None:
            skipped.append({"id": json_value(pid), "image": None if pd.isna(rel) else str(rel), "reason": "no image file"})
        signatures.append(sig)
    products["image_signature"] = pd.array(signatures, dtype="string")

    existing = _existing_index(out, settings)
    known = _reusable_vectors(existing)
    checkpoint = _Checkpoint(out / PARTIAL_DIR, settings)
    known.update(checkpoint.load())

    keys = [_key(pid, sig) for pid, sig in zip(products["id"], signatures)]
    todo = [i for i, (key, sig) in enumerate(zip(keys, signatures)) if sig is not None and key not in known]
    reused = sum(1 for key, sig in zip(keys, signatures) if sig is not None and key in known)

    if not todo and existing is not None and _index_matches(existing, products, keys, known, catalog.root, where):
        log.info("index %s is up to date (%d vectors)", out, reused)
        manifest = existing.manifest
        return IndexRunSummary(
            out, manifest["count"], 0, reused, list(manifest.get("skipped", [])),
            time.perf_counter() - started, manifest, unchanged=True,
        )

    embedded = 0
    if todo:
        paths = [catalog.root / products["image"].iloc[i] for i in todo]
        done_keys = [keys[i] for i in todo]
        for keys_done, vectors, failures in _embed_files(
            embedder, paths, done_keys, batch_size=batch_size, workers=workers,
            checkpoint_every=checkpoint_every, progress=progress, total=len(todo),
        ):
            checkpoint.save(keys_done, vectors, failures)
            for key, vector in zip(keys_done, vectors):
                known[key] = vector
            for key, reason in failures.items():
                known[key] = reason
            embedded += len(keys_done)

    # Assemble in catalog order; rows that failed become skipped.
    rows, vectors = [], []
    for i, key in enumerate(keys):
        if signatures[i] is None:
            continue
        value = known.get(key)  # a vector, a failure reason, or None when never embedded
        if not isinstance(value, np.ndarray):
            skipped.append({"id": json_value(products["id"].iloc[i]), "image": str(products["image"].iloc[i]),
                            "signature": signatures[i], "reason": value or "not embedded"})
            continue
        rows.append(i)
        vectors.append(value)
    dim = settings["dim"]
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    manifest = {
        **settings,
        "catalog": {"root": str(catalog.root.resolve()), "where": dict(where or {})},
        "skipped": skipped,
    }
    if existing is not None:
        manifest["created"] = existing.manifest.get("created")
    written = write_index(out, matrix, products.iloc[rows].reset_index(drop=True), manifest)
    checkpoint.discard()
    seconds = time.perf_counter() - started
    log.info("index %s: %d vectors (%d embedded, %d reused, %d skipped) in %.1f s",
             out, len(rows), embedded, reused, len(skipped), seconds)
    return IndexRunSummary(out, len(rows), embedded, reused, skipped, seconds, written)


def _key(pid: Any, sig: str | None) -> str:
    return f"{pid}\t{sig}"


def _existing_index(out: Path, settings: Mapping[str, Any]) -> IndexFolder | None:
    """The index already in ``out`` (same settings), None for a new or damaged one."""
    if not (out / MANIFEST_FILE).is_file():
        if out.exists() and any(p.name != PARTIAL_DIR for p in out.iterdir()):
            raise IndexFolderError(f"{out} exists and is not an index folder; choose an empty or new --out folder")
        return None
    check_compatible(read_manifest(out), settings, where=f"index {out}")
    try:
        return IndexFolder.load(out)
    except IndexFolderError as exc:
        log.warning("ignoring the damaged index in %s (%s); its vectors will be recomputed", out, exc)
        return None


def _reusable_vectors(index: IndexFolder | None) -> dict[str, Any]:
    """Vectors (and remembered failures) of an existing index, by id and image signature."""
    known: dict[str, Any] = {}
    if index is None:
        return known
    for entry in index.manifest.get("skipped", []):
        if entry.get("signature"):  # an unreadable file stays skipped until it changes
            known[_key(entry["id"], entry["signature"])] = entry["reason"]
    if "image_signature" in index.products.columns:
        for pid, sig, vector in zip(index.products["id"], index.products["image_signature"], index.embeddings):
            known[_key(pid, sig)] = np.array(vector)
    return known


def _index_matches(index: IndexFolder, products, keys, known, root, where) -> bool:
    """True when ``index`` already holds exactly these products (its settings are checked already)."""
    catalog_info = index.manifest.get("catalog") or {}
    if catalog_info.get("root") != str(Path(root).resolve()) or catalog_info.get("where") != dict(where or {}):
        return False
    embedded = [i for i, key in enumerate(keys) if isinstance(known.get(key), np.ndarray)]
    expected = products.iloc[embedded].reset_index(drop=True)
    current = index.products
    if list(current.columns) != list(expected.columns) or len(current) != len(expected):
        return False
    return all(
        current[c].astype("string").fillna("\0").equals(expected[c].astype("string").fillna("\0"))
        for c in expected.columns
    )


class _Checkpoint:
    """Append-only checkpoint files of finished work inside ``<index>/.partial``.

    Each chunk is written atomically (``chunk-NNNNNN.npz``: keys, vectors,
    failures), so a kill at any moment loses at most the unsaved batch.
    """

    def __init__(self, folder: Path, settings: Mapping[str, Any]):
        self.folder = folder
        self.settings = json.loads(json.dumps({k: settings[k] for k in ("backbone", "weights", "preprocessing", "dim")}))
        self._next = 0

    def load(self) -> dict[str, Any]:
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return {}
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        if state != self.settings:
            log.warning("discarding checkpoints in %s: made with other settings", self.folder)
            shutil.rmtree(self.folder, ignore_errors=True)
            return {}
        known: dict[str, Any] = {}
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(chunk, allow_pickle=False) as data:
                    for key, vector in zip(data["keys"], data["vectors"]):
                        known[str(key)] = vector
                    for key, reason in zip(data["failed_keys"], data["failed_reasons"]):
                        known[str(key)] = str(reason)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable checkpoint %s (%s)", chunk, exc)
            self._next = max(self._next, int(chunk.stem.split("-")[1]) + 1)
        if known:
            log.info("resuming: %d images already embedded in %s", len(known), self.folder)
        return known

    def save(self, keys: Sequence[str], vectors: np.ndarray, failures: Mapping[str, str]) -> None:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True)
            atomic_write(self.folder / "state.json", lambda f: f.write(json.dumps(self.settings).encode()))
        target = self.folder / f"chunk-{self._next:06d}.npz"
        self._next += 1
        atomic_write(
            target,
            lambda f: np.savez(
                f,
                keys=np.array(keys, dtype=str),
                vectors=np.asarray(vectors, np.float32),
                failed_keys=np.array(list(failures), dtype=str),
                failed_reasons=np.array(list(failures.values()), dtype=str),
            ),
        )

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _embed_files(
    embedder: ImageEmbedder,
    paths: Sequence[Path],
    keys: Sequence[str],
    *,
    batch_size: int,
    workers: int,
    checkpoint_every: int,
    progress: ProgressCallback | None,
    total: int,
) -> Iterable[tuple[list[str], np.ndarray, dict[str, str]]]:
    """Yield ``(keys, vectors, failures)`` every ``checkpoint_every`` images.

    Decoding runs on ``workers`` threads (Pillow releases the GIL) a couple of
    batches ahead of the model, so the model rarely waits for images.
    """
    preprocessing = embedder.preprocessing
    done = 0
    # Finished batches as (keys, vectors) pairs: one list append per batch, so an
    # interrupt can never separate a vector from its key.
    pending: list[tuple[list[str], np.ndarray]] = []
    failures: dict[str, str] = {}

    def decode(path: Path):
        try:
            return load_image_array(path, preprocessing)
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            return f"unreadable image: {type(exc).__name__}: {exc}"

    def flush():
        keys_done = [key for batch_keys, _ in pending for key in batch_keys]
        vectors = np.concatenate([v for _, v in pending]) if pending else np.zeros((0, embedder.dim), np.float32)
        return keys_done, vectors, dict(failures)

    batches = [range(i, min(i + batch_size, len(paths))) for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        ahead: deque[tuple[range, list[Future]]] = deque()
        submitted = 0

        def submit_next():
            nonlocal submitted
            if submitted < len(batches):
                batch = batches[submitted]
                ahead.append((batch, [pool.submit(decode, paths[i]) for i in batch]))
                submitted += 1

        try:
            for _ in range(3):
                submit_next()
            while ahead:
                batch, futures = ahead.popleft()
                submit_next()
                arrays, ok_keys = [], []
                for i, future in zip(batch, futures):
                    result = future.result()
                    if isinstance(result, str):
                        log.warning("skipping %s: %s", paths[i], result)
                        failures[keys[i]] = result
                    else:
                        arrays.append(result)
                        ok_keys.append(keys[i])
                if arrays:
                    pending.append((ok_keys, embedder.embed_arrays(np.stack(arrays))))
                done += len(batch)
                if progress:
                    progress(done, total)
                if sum(len(k) for k, _ in pending) + len(failures) >= checkpoint_every or not ahead:
                    chunk = flush()
                    pending, failures = [], {}
                    yield chunk
        except KeyboardInterrupt:
            # Ctrl-C: hand back the finished batches for checkpointing, then stop.
            for future in (f for _, fs in ahead for f in fs):
                future.cancel()
            if pending or failures:
                yield flush()
            raise

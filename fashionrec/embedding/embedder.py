"""One image at a time: decoding a file for a backbone, and the backbone that embeds it.

Nothing heavy loads at import time: torch and the runtimes load when an
:class:`ImageEmbedder` first needs its model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import FashionrecError, IndexFolderError
from .features import DEFAULT_FEATURES, FEATURE_TRANSFORMS, check_features
from ..images import DEFAULT_MAX_PIXELS, check_pixels


def load_image_array(
    path: str | os.PathLike, preprocessing, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode one image file and preprocess it into a (3, S, S) float32 array.

    ``S`` is ``preprocessing.input_size``. The pixel count the header declares
    (width x height) is checked against ``max_pixels`` before anything is
    decoded (the same limit as query pictures, ``fashionrec.images.DEFAULT_MAX_PIXELS``;
    None leaves only Pillow's own guard): over it raises
    :class:`~fashionrec.images.TooManyPixelsError`. Large JPEGs are decoded in
    draft mode at the pre-crop size (not at full resolution), which is several
    times cheaper. Raises OSError/ValueError subclasses (and
    ``PIL.Image.DecompressionBombError``) for unreadable files; the caller
    decides to skip.
    """
    from ..models import draft_target, preprocess

    with Image.open(path) as image:
        check_pixels(image.size, max_pixels, f"image file {path}")
        if image.format == "JPEG":
            image.draft("RGB", draft_target(preprocessing))
        image.load()
        return preprocess(image, preprocessing)


class ImageEmbedder:
    """Backbone + preprocessing + runtime: PIL images to feature vectors.

    Parameters
    ----------
    backbone: registered backbone name (see ``fashionrec.models``); None for the default.
    weights: local weights file, or None for the backbone's own weights.
    preprocessing: override of the backbone's preprocessing (e.g. ``mode="pad"``);
        None uses the backbone's default.
    runtime: "auto", "torch", "onnxruntime" or "openvino".
    cache_dir: where exported runtime models are kept; None for the default cache.
    precision: None (fp32; see ``fashionrec.models``) or "bf16" (OpenVINO only:
        faster, but below the cosine bar ``fashionrec.models.COSINE_BAR`` for some images).
    max_pixels: most pixels (width x height) an image file of a build may declare
        (see :func:`load_image_array`); None leaves only Pillow's own guard.
    num_threads: intra-op threads of the ONNX Runtime / OpenVINO model; None for
        the CPUs this process may use (see :class:`~fashionrec.models.FeatureExtractor`).
    features: the transform applied to the backbone's features
        (:data:`~fashionrec.embedding.features.FEATURE_TRANSFORMS`: "raw" or "power").

    The model loads on first use (:attr:`extractor`), not here.
    """

    def __init__(
        self,
        backbone: str | None = None,
        weights: str | os.PathLike | None = None,
        preprocessing=None,
        runtime: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        precision: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        num_threads: int | None = None,
        features: str = DEFAULT_FEATURES,
    ):
        if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
            raise FashionrecError(f"max_pixels must be a whole number of pixels, 1 or more (or None), got {max_pixels!r}")
        self.backbone = backbone
        self.weights = weights
        self.preprocessing_override = preprocessing
        self.runtime = runtime
        self.precision = precision
        self.cache_dir = cache_dir
        self.max_pixels = max_pixels
        self.num_threads = num_threads
        self.features = check_features(features)
        self.expected_weights: str | None = None  # set by from_manifest and replica: refuse other weights
        # Whose weights those are, and what to do when they differ (the error's words).
        self._expected_from = ("the index's", "pass --weights with the file the index was built with")
        self._extractor = None

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, weights: str | os.PathLike | None = None, runtime: str = "auto"
    ) -> ImageEmbedder:
        """An embedder that reproduces an index's vectors (same backbone, weights, preprocessing).

        Its model refuses to load (:class:`IndexFolderError`) when the weights
        differ from those the manifest names.
        """
        from ..models import Preprocessing

        if weights is None and manifest.get("weights_path") and Path(manifest["weights_path"]).is_file():
            weights = manifest["weights_path"]
        embedder = cls(
            manifest["backbone"],
            weights=weights,
            preprocessing=Preprocessing.from_dict(manifest["preprocessing"]),
            runtime=runtime,
            features=manifest.get("features", DEFAULT_FEATURES),
        )
        embedder.expected_weights = manifest["weights"]
        return embedder

    def replica(self, *, num_threads: int | None = None, origin: str = "the original embedder's") -> ImageEmbedder:
        """An unloaded copy that makes the same vectors as this embedder, for another process or machine.

        It has the backbone, weights file (its absolute path), preprocessing and
        pixel limit of this one, and the runtime and precision this one resolved
        (``auto`` could pick another runtime on another machine); its model refuses to load
        (:class:`IndexFolderError`, naming the weights expected as ``origin``)
        with weights of another identity. Loads this embedder's model.
        ``num_threads`` as in the constructor.
        """
        settings = self.settings()
        twin = ImageEmbedder(
            self.backbone, weights=settings["weights_path"], preprocessing=self.preprocessing,
            runtime=settings["runtime"], cache_dir=self.cache_dir, precision=settings["precision"],
            max_pixels=self.max_pixels, num_threads=num_threads, features=self.features,
        )
        twin.expected_weights = settings["weights"]
        twin._expected_from = (origin, "expected the same weights file (or package) at the same path on every machine")
        return twin

    @property
    def extractor(self):
        """The loaded :class:`~fashionrec.models.FeatureExtractor` (built on first use)."""
        if self._extractor is None:
            from ..models import DEFAULT_BACKBONE, FeatureExtractor

            extractor = FeatureExtractor(
                self.backbone or DEFAULT_BACKBONE, weights=self.weights, runtime=self.runtime,
                cache_dir=self.cache_dir, precision=self.precision, num_threads=self.num_threads,
            )
            extractor.load()
            if self.expected_weights and extractor.weights_identity != self.expected_weights:
                whose, remedy = self._expected_from
                raise IndexFolderError(
                    f"weights {extractor.weights_identity!r} differ from {whose} {self.expected_weights!r}; {remedy}"
                )
            self._extractor = extractor
        return self._extractor

    @property
    def config(self):
        """The backbone's :class:`~fashionrec.models.BackboneConfig`."""
        from ..models import DEFAULT_BACKBONE, get_backbone

        return get_backbone(self.backbone or DEFAULT_BACKBONE)

    @property
    def preprocessing(self):
        """The :class:`~fashionrec.models.Preprocessing` in use (the override, else the backbone's)."""
        return self.preprocessing_override or self.config.preprocessing

    @property
    def dim(self) -> int:
        """D, the length of one feature vector."""
        return self.config.dim

    def settings(self) -> dict[str, Any]:
        """The manifest fields that identify these vectors (loads the model)."""
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
        if self.features != DEFAULT_FEATURES:  # absent means raw: indexes built before transforms existed match
            settings["features"] = self.features
        # JSON round trip: compare equal to what a manifest on disk holds (lists, not tuples).
        return json.loads(json.dumps(settings))

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) preprocessed float32 → (N, D) float32, transformed as :attr:`features` says."""
        vectors = np.asarray(self.extractor(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
        return FEATURE_TRANSFORMS[self.features](vectors)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images → (len(images), D) float32 features."""
        from ..models import preprocess

        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self.embed_arrays(np.stack([preprocess(image, self.preprocessing) for image in images]))

"""Feature transforms: what is done to the backbone's pooled features before they are stored and compared.

``raw`` keeps them as the backbone gives them (the reference design: ResNet50's
features, compared by Euclidean distance). ``power`` takes the signed square
root of each component, then scales each vector to unit length: Euclidean
distance between such vectors is the Hellinger distance between the feature
profiles, which evens out a few dominant channels. It measured best on every
measure we use (README, "Quality"), so it is the recommended setting; ``raw``
stays the default so that the reference design works as described.

An index records its transform in the manifest (``features``; absent means
``raw``), and photo queries are transformed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import FashionrecError

DEFAULT_FEATURES = "raw"


def _raw(vectors: np.ndarray) -> np.ndarray:
    return vectors


def _power(vectors: np.ndarray) -> np.ndarray:
    rooted = np.sign(vectors) * np.sqrt(np.abs(vectors))
    norms = np.linalg.norm(rooted, axis=1, keepdims=True)
    return np.divide(rooted, norms, out=np.zeros_like(rooted), where=norms > 0).astype(np.float32, copy=False)


FEATURE_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"raw": _raw, "power": _power}
"""Name -> function of (N, D) float32 features returning (N, D) float32."""


def check_features(name: str) -> str:
    """``name`` if it is a known transform; FashionrecError naming the known ones otherwise."""
    if name not in FEATURE_TRANSFORMS:
        raise FashionrecError(f"unknown feature transform {name!r}; expected one of {', '.join(FEATURE_TRANSFORMS)}")
    return name

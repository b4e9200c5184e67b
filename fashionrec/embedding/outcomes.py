"""What became of each image: a feature vector, or an :class:`ImageFailure` saying why not.

Work is keyed by :func:`work_key` — the product id and the image file's
signature (:func:`~fashionrec.embedding.plan.image_signature`) — so a result
stays valid until the file changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ImageFailure:
    """Why one product has no vector; ``reason`` is the text the manifest's ``skipped`` entry shows.

    Build with :meth:`unreadable` for a file that could not be decoded,
    :meth:`non_finite` for an image the backbone gave a NaN or inf vector, or use
    :data:`NO_IMAGE_FILE` / :data:`NOT_EMBEDDED`.
    """

    reason: str

    @classmethod
    def unreadable(cls, exc: BaseException) -> ImageFailure:
        """The failure of a file that raised ``exc`` while decoding: ``unreadable image: <Type>: <message>``."""
        return cls(f"unreadable image: {type(exc).__name__}: {exc}")

    @classmethod
    def non_finite(cls, vector: np.ndarray) -> ImageFailure:
        """The failure of an image whose vector holds a NaN or inf:
        ``the backbone returned a non-finite vector (NaN) for this image`` (``inf``, ``NaN and inf``)."""
        vector = np.asarray(vector)
        kinds = " and ".join(k for k, hit in (("NaN", np.isnan(vector).any()), ("inf", np.isinf(vector).any())) if hit)
        return cls(f"the backbone returned a non-finite vector ({kinds}) for this image")

    @classmethod
    def too_large(cls, detail: str) -> ImageFailure:
        """The failure of a file over the pixel limit: ``too large: <w> x <h> = <n> pixels, at most <limit>``."""
        return cls(f"{TOO_LARGE_PREFIX}{detail}")

    @property
    def retried(self) -> bool:
        """True for failures tried again on every run rather than remembered until the file changes.

        A file over the pixel limit is refused from its header, which costs
        almost nothing to read again, and the limit may have been raised since.
        """
        return self.reason.startswith(TOO_LARGE_PREFIX)

    def __str__(self) -> str:
        return self.reason


TOO_LARGE_PREFIX = "too large: "


NO_IMAGE_FILE = ImageFailure("no image file")
"""A product whose image file is absent (no ``image`` path, or the file cannot be stat'ed)."""

NOT_EMBEDDED = ImageFailure("not embedded")
"""A product the run ended without a result for (never expected after a complete run)."""


def work_key(product_id: Any, signature: str | None) -> str:
    """The key of one unit of work: ``"<id>\\t<signature>"`` (the checkpoint files store these)."""
    return f"{product_id}\t{signature}"


@dataclass
class Chunk:
    """Finished work handed over at once (and checkpointed as one file).

    ``keys[i]`` owns ``vectors[i]`` (``vectors``: (len(keys), D) float32);
    ``failures`` maps further keys to why they have no vector.
    """

    keys: list[str]
    vectors: np.ndarray
    failures: dict[str, ImageFailure] = field(default_factory=dict)

    def __len__(self) -> int:
        """Images this chunk settles: embedded plus failed."""
        return len(self.keys) + len(self.failures)

    def screened(self) -> Chunk:
        """This chunk with every non-finite vector (any NaN or inf) moved to ``failures``
        (:meth:`ImageFailure.non_finite`); ``self`` when all vectors are finite."""
        vectors = np.asarray(self.vectors)
        finite = np.isfinite(vectors).all(axis=1) if vectors.ndim == 2 else np.ones(len(self.keys), bool)
        if finite.all():
            return self
        failures = dict(self.failures)
        for i in np.flatnonzero(~finite):
            failures[self.keys[i]] = ImageFailure.non_finite(vectors[i])
        keep = np.flatnonzero(finite)
        return Chunk([self.keys[i] for i in keep], vectors[keep], failures)


class ChunkBuffer:
    """Finished work not yet handed over, gathered batch by batch and handed over as one :class:`Chunk`.

    Both executors keep their results here between checkpoints. A batch is one
    list append of its keys with their (n, D) float32 vectors, so an interrupt
    can never separate a vector from its key.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._batches: list[tuple[list[str], np.ndarray]] = []
        self._failures: dict[str, ImageFailure] = {}

    def __len__(self) -> int:
        """Images settled since the last :meth:`flush`: embedded plus failed."""
        return sum(len(keys) for keys, _ in self._batches) + len(self._failures)

    def add_batch(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``vectors[i]`` ((len(keys), D) float32) as the result of ``keys[i]``."""
        if len(keys):
            self._batches.append((list(keys), vectors))

    def add_failure(self, key: str, failure: ImageFailure) -> None:
        self._failures[key] = failure

    def flush(self) -> Chunk:
        """Everything added since the last flush, as one chunk; the buffer is empty afterwards."""
        batches, failures = self._batches, self._failures
        self._batches, self._failures = [], {}
        keys = [key for batch_keys, _ in batches for key in batch_keys]
        vectors = np.concatenate([v for _, v in batches]) if batches else np.zeros((0, self.dim), np.float32)
        return Chunk(keys, vectors, failures)


class Outcomes:
    """Results by work key: a (D,) float32 vector or an :class:`ImageFailure`, never both.

    A later result for a key replaces an earlier one, whichever its kind.
    """

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.failures: dict[str, ImageFailure] = {}

    def __len__(self) -> int:
        return len(self.vectors) + len(self.failures)

    def __contains__(self, key: object) -> bool:
        return key in self.vectors or key in self.failures

    def add_vector(self, key: str, vector: np.ndarray) -> None:
        self.failures.pop(key, None)
        self.vectors[key] = vector

    def add_failure(self, key: str, failure: ImageFailure) -> None:
        self.vectors.pop(key, None)
        self.failures[key] = failure

    def add_vectors(self, keys: Sequence[str], vectors: Iterable[np.ndarray]) -> None:
        for key, vector in zip(keys, vectors):
            self.add_vector(key, vector)

    def add_failures(self, failures: Mapping[str, ImageFailure]) -> None:
        for key, failure in failures.items():
            self.add_failure(key, failure)

    def add_chunk(self, chunk: Chunk) -> None:
        self.add_vectors(chunk.keys, chunk.vectors)
        self.add_failures(chunk.failures)

    def update(self, other: Outcomes) -> None:
        """Take every result of ``other``, replacing this one's for the same keys."""
        self.add_vectors(list(other.vectors), other.vectors.values())
        self.add_failures(other.failures)

"""The checkpoint of a build in progress: ``<index folder>/.partial``.

On disk (unchanged across versions, so an interrupted run of an older version
resumes): ``state.json`` holds the settings the vectors were made with
(``backbone``, ``weights``, ``preprocessing``, ``dim``), and each
``chunk-NNNNNN.npz`` one :class:`~fashionrec.embedding.outcomes.Chunk`:

* ``keys``: (n,) str — work keys (``"<id>\\t<signature>"``),
* ``vectors``: (n, D) float32 — ``vectors[i]`` belongs to ``keys[i]``,
* ``failed_keys``, ``failed_reasons``: (m,) str — images that could not be embedded, and why.

Each chunk is written atomically, so a kill at any moment loses at most the
work not yet handed to :meth:`Checkpoint.save`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..crashpoints import crash_point
from ..output import atomic_write
from .outcomes import Chunk, ImageFailure, Outcomes

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
"""Checkpoint folder inside an index folder while a build is in progress."""

CHECKPOINT_EVERY = 256
"""Images embedded between two checkpoints: at most this much work is lost to kill -9."""

SETTINGS_KEYS = ("backbone", "weights", "preprocessing", "dim", "features")
"""The settings a checkpoint's vectors depend on; a checkpoint made with others is discarded."""


class Checkpoint:
    """Append-only checkpoint files of finished work inside ``folder`` (``<index>/.partial``).

    ``settings`` holds :data:`SETTINGS_KEYS` (an embedder's settings; ``features`` only when not raw).
    """

    def __init__(self, folder: Path, settings: Mapping[str, Any]):
        self.folder = Path(folder)
        # "features" is absent for raw features (as in checkpoints written before transforms existed)
        self.settings = json.loads(json.dumps({k: settings[k] for k in SETTINGS_KEYS if k in settings}))
        self._next = 0

    def load(self) -> Outcomes:
        """The work saved by earlier, interrupted runs (empty when none).

        A checkpoint made with other settings is deleted; an unreadable chunk
        is skipped with a warning (its images are embedded again), and so is a
        non-finite vector (a NaN or inf is never reused as finished work).
        """
        outcomes = Outcomes()
        for leftover in self.folder.glob(".*.tmp"):  # a chunk being written when the process was killed
            leftover.unlink(missing_ok=True)
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return outcomes
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        if state != self.settings:
            log.warning("discarding checkpoints in %s: made with other settings", self.folder)
            shutil.rmtree(self.folder, ignore_errors=True)
            return outcomes
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(chunk, allow_pickle=False) as data:
                    keys, vectors = [str(key) for key in data["keys"]], np.asarray(data["vectors"])
                    if vectors.ndim != 2 or len(vectors) != len(keys):
                        raise ValueError(f"vectors of shape {vectors.shape} for {len(keys)} keys")
                    finite = np.isfinite(vectors).all(axis=1)
                    if not finite.all():
                        log.warning("ignoring %d non-finite vectors in checkpoint %s (re-embedding them)",
                                    int((~finite).sum()), chunk)
                    outcomes.add_vectors([k for k, ok in zip(keys, finite) if ok], vectors[finite])
                    failures = {str(key): ImageFailure(str(reason))
                                for key, reason in zip(data["failed_keys"], data["failed_reasons"])}
                    outcomes.add_failures({key: f for key, f in failures.items() if not f.retried})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable checkpoint %s (%s)", chunk, exc)
            self._next = max(self._next, int(chunk.stem.split("-")[1]) + 1)
        if outcomes:
            log.info("resuming: %d images already embedded in %s", len(outcomes), self.folder)
        return outcomes

    def save(self, chunk: Chunk) -> None:
        """Write ``chunk`` as the next ``chunk-NNNNNN.npz`` (creating the folder and ``state.json`` first).

        Non-finite vectors are saved as failures (:meth:`Chunk.screened`), never as finished work.
        """
        chunk = chunk.screened()
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True)
            atomic_write(self.folder / "state.json", lambda f: f.write(json.dumps(self.settings).encode()))
        target = self.folder / f"chunk-{self._next:06d}.npz"
        self._next += 1
        atomic_write(
            target,
            lambda f: np.savez(
                f,
                keys=np.array(chunk.keys, dtype=str),
                vectors=np.asarray(chunk.vectors, np.float32),
                failed_keys=np.array(list(chunk.failures), dtype=str),
                failed_reasons=np.array([failure.reason for failure in chunk.failures.values()], dtype=str),
            ),
        )

    def discard(self) -> None:
        """Delete the checkpoint folder (after the index is written)."""
        crash_point("discard checkpoint")
        shutil.rmtree(self.folder, ignore_errors=True)

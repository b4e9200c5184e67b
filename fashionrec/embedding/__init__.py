"""Stage 2 — embeddings: product images in, feature vectors out.

Two entry points:

* :class:`ImageEmbedder` turns PIL images into (n, D) float32 features with a
  registered backbone and its own preprocessing (used for photo queries).
* :func:`build_index` embeds a catalog selection into an index folder
  (:mod:`fashionrec.index`): images are decoded on worker threads while the
  model runs, finished work is checkpointed every few hundred images so an
  interrupted run (Ctrl-C, kill -9) resumes where it stopped, unreadable images
  are skipped and reported, and a re-run embeds only new or changed images.

A build runs in three steps, one module each: :mod:`.plan` (what must be done),
:mod:`.execute` (embedding the images, behind the :class:`Executor` contract)
and :mod:`.assemble` (writing the index), orchestrated by :mod:`.build`.
:mod:`.ray_build` holds the executor that embeds on a Ray cluster
(:class:`RayExecutor`, :func:`build_index_ray`; Ray is imported only when it runs).
:mod:`.embedder` holds the model side, :mod:`.checkpoint` the ``.partial``
folder, and :mod:`.outcomes` the per-image results (:class:`ImageFailure`).

Importing this package loads no model; torch loads on first use.
"""

from __future__ import annotations

from .build import IndexRunSummary, build_index
from .checkpoint import CHECKPOINT_EVERY, PARTIAL_DIR
from .embedder import ImageEmbedder, load_image_array
from .execute import Executor, ImageTask, ProgressCallback, ThreadedExecutor
from .outcomes import Chunk, ImageFailure
from .plan import EmbeddingPlan, image_signature
from .ray_build import RayExecutor, build_index_ray

__all__ = [
    "CHECKPOINT_EVERY", "PARTIAL_DIR", "Chunk", "EmbeddingPlan", "Executor", "ImageEmbedder", "ImageFailure",
    "ImageTask", "IndexRunSummary", "ProgressCallback", "RayExecutor", "ThreadedExecutor", "build_index",
    "build_index_ray", "image_signature", "load_image_array",
]

"""Executing a build: embedding a list of image files, handing back finished work in chunks.

:class:`Executor` is the contract :func:`~fashionrec.embedding.build_index`
relies on; :class:`ThreadedExecutor` is the local implementation (decoding on
worker threads ahead of the model). Another executor — e.g. one that spreads
the tasks over a cluster — only has to honour :meth:`Executor.run`'s contract.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import FashionrecError
from ..images import DEFAULT_MAX_PIXELS, TooManyPixelsError
from ..settings import available_cpus
from .embedder import ImageEmbedder, load_image_array
from .outcomes import Chunk, ChunkBuffer, ImageFailure

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)``: images settled so far out of all tasks; called after each batch."""

DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError,
)
"""Exceptions that mark an image file as unreadable (skipped, not fatal)."""


@dataclass(frozen=True)
class ImageTask:
    """One image to embed: its work key (see :func:`~fashionrec.embedding.outcomes.work_key`) and file."""

    key: str
    path: Path


def decode_task(task: ImageTask, preprocessing, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray | ImageFailure:
    """The (3, S, S) float32 input array of ``task``'s image, or the failure that explains why there is none."""
    try:
        return load_image_array(task.path, preprocessing, max_pixels=max_pixels)
    except TooManyPixelsError as exc:  # refused from its header, never decoded
        return ImageFailure.too_large(exc.detail)
    except DECODE_ERRORS as exc:
        return ImageFailure.unreadable(exc)


class Executor(ABC):
    """Turns image tasks into vectors with an :class:`ImageEmbedder`.

    Contract of :meth:`run`, which build_index relies on for resuming:

    * every task's key ends up in exactly one yielded :class:`Chunk`, as a
      vector (``keys``/``vectors``) or an :class:`ImageFailure` (``failures``);
      vectors are handed back as the backbone returned them: build_index moves
      a NaN or inf one to the failures (:meth:`Chunk.screened`);
    * a chunk is yielded once at least ``checkpoint_every`` images are settled
      since the last one, and at the end, so little work is lost to a crash;
    * on ``KeyboardInterrupt``, finished work not yet yielded is yielded first,
      then the interrupt propagates;
    * ``progress(done, total)`` (when given) is called as work settles, with
      ``total == len(tasks)``.
    """

    @abstractmethod
    def run(
        self,
        embedder: ImageEmbedder,
        tasks: Sequence[ImageTask],
        *,
        batch_size: int,
        checkpoint_every: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Chunk]:
        """Embed ``tasks`` in batches of ``batch_size``; yield finished work as chunks (see the class)."""


class ThreadedExecutor(Executor):
    """Runs in this process: ``workers`` threads decode images a few batches ahead of the model.

    Pillow releases the GIL while decoding, so threads overlap decoding with the
    model, which rarely waits for images. ``workers`` None (or 0) uses
    ``min(4, available CPUs)``; ``batches_ahead`` batches are decoded ahead of the model.
    """

    def __init__(self, workers: int | None = None, *, batches_ahead: int = 3):
        if workers is not None and workers < 0:
            raise FashionrecError(f"workers must be a positive number of threads (or 0 for the default), got {workers}")
        self.workers = workers
        self.batches_ahead = batches_ahead

    def run(
        self,
        embedder: ImageEmbedder,
        tasks: Sequence[ImageTask],
        *,
        batch_size: int,
        checkpoint_every: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Chunk]:
        workers = self.workers or min(4, available_cpus())
        preprocessing = embedder.preprocessing
        total = len(tasks)
        done = 0
        pending = ChunkBuffer(embedder.dim)

        batches = [tasks[i : i + batch_size] for i in range(0, total, batch_size)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            ahead: deque[tuple[Sequence[ImageTask], list[Future]]] = deque()
            submitted = 0

            def submit_next() -> None:
                nonlocal submitted
                if submitted < len(batches):
                    batch = batches[submitted]
                    ahead.append((batch, [pool.submit(decode_task, task, preprocessing, embedder.max_pixels) for task in batch]))
                    submitted += 1

            try:
                for _ in range(self.batches_ahead):
                    submit_next()
                while ahead:
                    batch, futures = ahead.popleft()
                    submit_next()
                    arrays, ok_keys = [], []
                    for task, future in zip(batch, futures):
                        result = future.result()
                        if isinstance(result, ImageFailure):
                            log.warning("skipping %s: %s", task.path, result.reason)
                            pending.add_failure(task.key, result)
                        else:
                            arrays.append(result)
                            ok_keys.append(task.key)
                    if arrays:
                        pending.add_batch(ok_keys, embedder.embed_arrays(np.stack(arrays)))
                    done += len(batch)
                    if progress:
                        progress(done, total)
                    if len(pending) >= checkpoint_every or not ahead:
                        yield pending.flush()
            except KeyboardInterrupt:
                # Ctrl-C: hand back the finished batches for checkpointing, then stop.
                for future in (f for _, fs in ahead for f in fs):
                    future.cancel()
                if len(pending):
                    yield pending.flush()
                raise

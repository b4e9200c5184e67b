"""Building an index folder from a catalog: plan → execute → assemble.

:func:`build_index` plans the run (:mod:`.plan`), embeds what is left with an
:class:`~fashionrec.embedding.execute.Executor` while checkpointing every chunk
(:mod:`.execute`, :mod:`.checkpoint`), then writes the index and its manifest
(:mod:`.assemble`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..catalog.look import CatalogLook
from ..errors import FashionrecError
from ..index import exclusive_build_lock, remove_leftovers
from ..index.manifest import check_writable_folder
from .assemble import assemble, write_assembly
from .checkpoint import CHECKPOINT_EVERY, PARTIAL_DIR, Checkpoint
from .embedder import ImageEmbedder
from .execute import Executor, ProgressCallback, ThreadedExecutor
from .plan import plan_build

log = logging.getLogger(__name__)


@dataclass
class IndexRunSummary:
    """What one :func:`build_index` run did."""

    path: Path
    """The index folder."""
    count: int
    """Vectors in the index now."""
    embedded: int
    """Images embedded by this run."""
    reused: int
    """Vectors (or remembered failures) kept from earlier runs or checkpoints."""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """The manifest's ``skipped`` entries: ``{id, image, reason}`` (+ ``signature`` for unreadable files)."""
    seconds: float = 0.0
    """Wall-clock duration of the run."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """The index's manifest as written (or as found, when unchanged)."""
    unchanged: bool = False
    """True when there was nothing to do: the index was already up to date."""

    @property
    def images_per_second(self) -> float:
        """Images embedded per wall-clock second of the whole run (0 when nothing was embedded)."""
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


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
    executor: Executor | None = None,
    follow_links: bool = False,
) -> IndexRunSummary:
    """Embed the catalog products selected by ``where`` into the index folder ``out``.

    Resumable and incremental: vectors already in ``out`` (same id, same image
    file) or in its checkpoint folder (``out/.partial``) are reused; only the
    rest is embedded, and finished work is checkpointed every
    ``checkpoint_every`` images, so an interrupted run (Ctrl-C, kill -9)
    resumes where it stopped. Products without an image file, with an
    unreadable one, or whose vector the backbone returns with a NaN or inf are
    skipped and listed in the summary and the manifest; such a file stays
    skipped until it changes. Non-finite vectors found in ``out`` (a damaged
    ``embeddings.npy``) are not reused: those images are embedded again.

    ``embedder`` defaults to ``ImageEmbedder()`` (the default backbone).
    ``executor`` runs the embedding (default: a :class:`ThreadedExecutor` with
    ``workers`` decoding threads; pass ``workers`` to that executor instead when
    giving one). ``progress(done, total)`` is called after each batch.
    Image files that are symbolic links to files outside the catalog folder
    are skipped with a reason unless ``follow_links``; the pixel limit of
    image files is the embedder's ``max_pixels``.

    Raises :class:`FashionrecError` for a bad ``batch_size``, and
    :class:`~fashionrec.errors.IndexFolderError` when ``out`` cannot be written
    (checked first), is not an index folder, holds an index made with other settings,
    or is being written by another build right now (see :func:`exclusive_build_lock`).
    """
    started = time.perf_counter()
    out = Path(out)
    embedder = embedder or ImageEmbedder()
    if batch_size < 1:
        raise FashionrecError(f"batch size must be at least 1, got {batch_size}")
    if executor is not None and workers is not None:
        raise FashionrecError(
            f"got both executor={executor!r} and workers={workers}; give the worker count to the executor"
        )
    executor = executor or ThreadedExecutor(workers)
    check_writable_folder(out)  # a file, read-only folder or impossible path fails before the model loads
    with exclusive_build_lock(out):  # a second run into the same folder fails at once
        selected = catalog.select(where)  # before loading the model: a bad filter fails fast
        settings = embedder.settings()  # loads the model: fails fast on missing weights
        checkpoint = Checkpoint(out / PARTIAL_DIR, settings)
        plan = plan_build(selected, out, settings, where=where, checkpoint=checkpoint, follow_links=follow_links)

        if plan.up_to_date:
            log.info("index %s is up to date (%d vectors)", out, plan.reused)
            checkpoint.discard()  # what a run killed after switching in its index left behind
            remove_leftovers(out)
            manifest = plan.existing.manifest
            return IndexRunSummary(
                out, manifest["count"], 0, plan.reused, list(manifest.get("skipped", [])),
                time.perf_counter() - started, manifest, unchanged=True,
            )

        embedded = 0
        tasks = plan.tasks()
        if tasks:
            for chunk in executor.run(
                embedder, tasks, batch_size=batch_size, checkpoint_every=checkpoint_every, progress=progress,
            ):
                screened = chunk.screened()  # a NaN or inf vector skips its image, with the reason
                for key in screened.failures.keys() - chunk.failures.keys():
                    log.warning("skipping product %s: %s", key.split("\t")[0], screened.failures[key].reason)
                chunk = screened
                checkpoint.save(chunk)
                plan.outcomes.add_chunk(chunk)
                embedded += len(chunk.keys)

        assembly = assemble(plan, settings["dim"])
        # What the catalog's images look like, for photo queries (fashionrec.catalog.look): a sample's headers.
        look = CatalogLook.measure([Path(catalog.root) / rel for rel in assembly.products["image"].dropna()])
        written = write_assembly(
            out, assembly, {**settings, **({"catalog_look": look.to_dict()} if look is not None else {})},
            root=catalog.root, where=where,
            previous=plan.existing.manifest if plan.existing is not None else None,
        )
        checkpoint.discard()
        seconds = time.perf_counter() - started
        count, skipped = len(assembly.products), assembly.skipped
        log.info("index %s: %d vectors (%d embedded, %d reused, %d skipped) in %.1f s",
                 out, count, embedded, plan.reused, len(skipped), seconds)
        return IndexRunSummary(out, count, embedded, plan.reused, skipped, seconds, written)

"""Engines saved in an index folder: built once, opened by every query process, kept current by `fashionrec index`.

An engine that takes long to build (``needs_build``: the FAISS engines) lives
in ``<index>/engines/<name>/<metric>/`` (written as a whole, see
:meth:`~fashionrec.search.approximate.ApproximateEngine.save`). Its
``engine.json`` records the index generation it was built or last updated for;
the index's ``manifest.json`` lists every saved engine (``engines``: name,
metric, parameters, build time, measured recall and latency), so that
``fashionrec info`` and the web page can show them.

* :func:`build_saved_engine` builds (or rebuilds) one from the index's vectors;
* :func:`update_saved_engines` brings every saved engine to the index's current
  generation after ``fashionrec index`` changed it (added and removed vectors,
  or a rebuild where the engine cannot be updated in place);
* :func:`open_saved_engine` opens one for queries, refusing one that is missing
  or was built for another generation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IndexFolderError
from ..index import ENGINES_DIR, IndexFolder, update_manifest
from .base import SearchEngine, read_description
from .registry import create_engine, engine_class

log = logging.getLogger(__name__)


def engine_folder(index: IndexFolder, name: str, metric: str) -> Path:
    """Where engine ``name`` built for ``metric`` is saved: ``<index>/engines/<name>/<metric>``."""
    return index.engine_dir(name) / metric


@dataclass(frozen=True)
class SavedEngine:
    """An engine saved in an index folder, as its ``engine.json`` describes it."""

    name: str
    metric: str
    folder: Path
    description: dict[str, Any]

    @property
    def generation(self) -> str | None:
        """The index generation the engine was built or last updated for."""
        return (self.description.get("vectors") or {}).get("index_generation")

    def summary(self) -> dict[str, Any]:
        """The manifest's record of this engine: what a user compares engines by."""
        tuning = self.description.get("tuning") or {}
        build = self.description.get("build") or {}
        return {
            "name": self.name, "metric": self.metric, "params": self.description.get("params"),
            "search_param": tuning.get("param"), "search_value": tuning.get("value"),
            "recall_at_10": tuning.get("recall"), "recall_queries": tuning.get("queries"),
            "target_recall": tuning.get("target_recall"),
            "p50_ms": tuning.get("p50_ms"), "p99_ms": tuning.get("p99_ms"), "exact_below": tuning.get("exact_below"),
            "build_seconds": build.get("seconds"), "vectors": (self.description.get("vectors") or {}).get("count"),
            "saved": self.description.get("saved"),
        }


def saved_engines(index: IndexFolder) -> list[SavedEngine]:
    """The engines saved in ``index``, by name then metric (unreadable ones are skipped with a warning)."""
    root = Path(index.path) / ENGINES_DIR
    found = []
    for folder in sorted(root.glob("*/*")):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            description = read_description(folder, expected=folder.parent.name)
        except IndexFolderError as exc:
            log.warning("ignoring the engine in %s: %s", folder, exc)
            continue
        found.append(SavedEngine(folder.parent.name, folder.name, folder, description))
    return found


def build_saved_engine(index: IndexFolder, name: str, *, metric: str = "euclidean", **params: Any) -> SavedEngine:
    """Build engine ``name`` over ``index``'s vectors, save it in the index folder and list it in the manifest.

    Replaces an engine of the same name and metric. Hold the folder's build
    lock (:func:`fashionrec.index.exclusive_build_lock`) around the call.
    """
    defaults = getattr(engine_class(name), "defaults_for", None)  # e.g. a server engine's collection name
    engine = create_engine(name, metric=metric, **{**(defaults(index.path, metric) if defaults else {}), **params})
    if not engine.needs_build:
        raise IndexFolderError(f"the {name} engine keeps no files: nothing to build (it is made when queried)")
    started = time.perf_counter()
    engine.build(index.embeddings, index.vector_ids, index.products)
    engine.index_generation = index.manifest.get("generation")
    folder = engine.save(engine_folder(index, name, engine.metric))
    log.info("saved the %s engine (%s) in %s after %.1f s", name, engine.metric, folder, time.perf_counter() - started)
    record_saved_engines(index)
    return _saved(index, name, engine.metric)


def update_saved_engines(index: IndexFolder) -> list[tuple[SavedEngine, str]]:
    """Bring every engine saved in ``index`` to its current generation; returns ``(engine, what was done)`` pairs.

    Hold the folder's build lock around the call.
    """
    done = []
    generation = index.manifest.get("generation")
    for saved in saved_engines(index):
        if saved.generation == generation:
            done.append((saved, "up to date"))
            continue
        cls = engine_class(saved.name)
        started = time.perf_counter()
        engine = cls.open_for_update(saved.folder)
        action = engine.update(index.embeddings, index.vector_ids, index.products)
        engine.index_generation = generation
        engine.save(saved.folder)
        log.info("%s engine (%s): %s in %.1f s", saved.name, saved.metric, action, time.perf_counter() - started)
        done.append((_saved(index, saved.name, saved.metric), action))
    if done:
        record_saved_engines(index)
    return done


def open_saved_engine(index: IndexFolder, name: str, metric: str, *, products=None) -> SearchEngine:
    """Open engine ``name`` for ``metric`` saved in ``index``, for queries.

    ``products`` are the attributes filters are evaluated on (default: the
    index's products). Raises :class:`IndexFolderError` when the engine is not
    saved there for this metric, or was built for another version of the index.
    """
    folder = engine_folder(index, name, metric)
    command = build_command(name, index.path, metric)
    if not folder.is_dir():
        raise IndexFolderError(
            f"the {name} engine is not built in {index.path} for the {metric} metric; build it with `{command}`"
        )
    description = read_description(folder, expected=name)
    if (description.get("vectors") or {}).get("index_generation") != index.manifest.get("generation"):
        raise IndexFolderError(
            f"the {name} engine in {folder} was built for an earlier version of the index; update it with "
            f"`{command}` (`fashionrec index` updates saved engines)"
        )
    return engine_class(name).load(folder, index.embeddings, index.vector_ids,
                                   index.products if products is None else products)


def build_command(name: str, index_path, metric: str) -> str:
    """The command that builds (or updates) engine ``name`` for ``metric`` in the index folder ``index_path``.

    ``fashionrec engine`` by default; an engine class may name its own (``build_command(index_path, metric)``).
    """
    own = getattr(engine_class(name), "build_command", None)
    return own(index_path, metric) if own is not None else f"fashionrec engine {index_path} {name} --metric {metric}"


def _saved(index: IndexFolder, name: str, metric: str) -> SavedEngine:
    folder = engine_folder(index, name, metric)
    return SavedEngine(name, metric, folder, read_description(folder, expected=name))


def record_saved_engines(index: IndexFolder) -> None:
    """List the saved engines in the manifest of the index's current generation (hold the build lock)."""
    summaries = [saved.summary() for saved in saved_engines(index)]
    index.manifest = update_manifest(index.path, engines=summaries)

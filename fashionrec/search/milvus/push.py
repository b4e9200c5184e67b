"""``fashionrec milvus push``: an index folder's vectors into a Milvus collection, recorded in the folder.

:func:`push_index` makes a collection hold exactly the index's vectors and
attributes (:meth:`MilvusEngine.sync`: only what changed is sent, so it is
idempotent and an interrupted push resumes), tunes its search parameter, and
saves the engine in ``<index>/engines/milvus/<metric>/`` and the manifest's
``engines`` list, as ``fashionrec engine`` does for the FAISS engines. From
then on ``Recommender.load(index, engine="milvus")`` (``--engine milvus``)
answers through the server, and ``fashionrec index`` pushes what changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import IndexFolderError
from ...index import IndexFolder, exclusive_build_lock
from ...validation import check_metric
from ..base import read_description
from .connection import URI_ENV, MilvusError
from .engine import MilvusEngine, default_collection

log = logging.getLogger(__name__)


@dataclass
class PushSummary:
    """What a push did: where the vectors are, how many rows it sent, and the recall measured."""

    index: Path
    uri: str
    collection: str
    index_type: str
    metric: str
    vectors: int
    added: int
    changed: int
    removed: int
    unchanged: int
    created: bool
    seconds: float
    tuning: dict[str, Any] = field(default_factory=dict)


def push_index(
    index_dir: str | os.PathLike,
    *,
    metric: str = "euclidean",
    uri: str | None = None,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    collection: str | None = None,
    index_type: str | None = None,
    batch_size: int | None = None,
    target_recall: float | None = None,
    recreate: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> PushSummary:
    """Push the index folder's vectors to a Milvus collection and record the engine in the folder.

    Options left None keep what the folder's last push of this metric used
    (its collection, index type...; the server: ``$FASHIONREC_MILVUS_URI`` when
    set, as when the engine is opened), else the engine's defaults
    (:class:`MilvusEngine`; the collection is named by
    :func:`default_collection`). ``progress(sent, to_send)`` follows the
    upserts. Holds the folder's build lock. Raises IndexFolderError for a
    missing or damaged index folder, MilvusError for the server's refusals.
    """
    from ..saved import engine_folder, record_saved_engines  # here: saved imports the registry, which imports us

    index_dir = Path(index_dir)
    metric = check_metric(metric)
    if not index_dir.is_dir():
        raise IndexFolderError(f"index folder {index_dir} not found; expected a folder built by `fashionrec index`")
    started = time.perf_counter()
    with exclusive_build_lock(index_dir):
        index = IndexFolder.load(index_dir)
        folder = engine_folder(index, MilvusEngine.name, metric)
        previous: dict[str, Any] | None = None
        if folder.is_dir():
            try:
                previous = read_description(folder, expected=MilvusEngine.name)
            except IndexFolderError as exc:
                log.warning("%s; pushing with default settings", exc)
        params = dict((previous or {}).get("params") or {})
        if uri is None and os.environ.get(URI_ENV):
            uri = os.environ[URI_ENV]  # as when the engine is opened: the environment names the server first
        if uri is not None and collection is None and params.get("uri") not in (None, uri):
            params.pop("collection", None)  # another server: the default name, not the other server's choice
        if index_type is not None and str(index_type).upper() != str(params.get("index_type", "")).upper():
            for key in ("search_value", "nlist"):  # chosen for another index type: meaningless for this one
                params.pop(key, None)
        given = {"uri": uri, "collection": collection, "index_type": index_type, "batch_size": batch_size,
                 "target_recall": target_recall, **options}
        params.update({key: value for key, value in given.items() if value is not None})
        params["metric"] = metric
        params.setdefault("collection", default_collection(index_dir, metric))
        try:
            engine = MilvusEngine(**params, token=token, user=user, password=password)
        except (TypeError, ValueError) as exc:
            raise MilvusError(f"cannot push {index_dir}: {exc}") from None
        if previous is not None and _settings(previous.get("params") or {}) == _settings(engine.params()):
            engine.adopt(previous)  # its tuning and push token: kept when nothing changes
        engine.progress = progress
        generation = index.manifest.get("generation")
        engine.index_generation = generation
        engine.build(index.embeddings, index.vector_ids, index.products, recreate=recreate)
        unchanged = previous is not None and engine.description is not None and engine.push_token and \
            engine.push_token == (previous.get("milvus") or {}).get("push") and \
            (previous.get("vectors") or {}).get("index_generation") == generation
        if not unchanged:
            engine.save(folder)
            record_saved_engines(index)
    stats = engine.last_sync
    log.info("pushed %s to %s in %.1f s", index_dir, engine.where, time.perf_counter() - started)
    return PushSummary(index=index_dir, uri=engine.uri, collection=engine.collection, index_type=engine.index_type,
                       metric=metric, vectors=engine.ntotal, added=stats["added"], changed=stats["changed"],
                       removed=stats["removed"], unchanged=stats["unchanged"], created=stats["created"],
                       seconds=round(time.perf_counter() - started, 3), tuning=dict(engine.tuning))


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that decide what a push makes and measures (not how fast it sends)."""
    return {key: value for key, value in params.items() if key not in ("batch_size", "timeout", "load_timeout")}

"""The ``milvus`` engine: the vectors in a Milvus collection, the answers the same as ours.

:class:`MilvusEngine` keeps the vectors in a collection of a Milvus server
(standalone or a cluster) and asks it for candidates; every answer is then
finished here, from the index folder's own float32 vectors, the way the
approximate FAISS engines finish theirs:

* **Distances.** Milvus ranks by squared L2 (or cosine similarity) in float32.
  Its candidates are re-ranked with :meth:`ExactScan.rerank`, the exact
  engine's arithmetic, so each distance is bit for bit what the exact engine
  gives that product (Euclidean, not squared), ties by the lower id.
* **FLAT collections answer exactly.** A FLAT index returns the true nearest
  vectors by Milvus's float32 distance. More candidates are fetched than asked
  for; the answer is kept only when the farthest candidate Milvus returned is,
  beyond any float32 rounding, farther than the k-th exact result — then no
  product left out can beat or tie it. Otherwise four times as many are fetched
  (distance ties at the cut-off included). So a FLAT collection answers
  exactly like the exact engine (:attr:`exact_answers` is True for it).
* **HNSW and IVF collections** may miss a neighbour, never misstate one; their
  search parameter (``ef`` / ``nprobe``) is tuned at push time to reach
  ``target_recall`` (recall@10 against the exact engine, on catalog products,
  each query's own product excluded), as the FAISS engines are.
* **Filters** become Milvus boolean expressions over the attribute fields
  (:mod:`.expressions`), evaluated on the server; the query product is
  excluded by id (Milvus is asked for as many more candidates as ids are
  excluded, and they are dropped here).
* **More than Milvus returns.** A query that needs more than
  :data:`MAX_TOPK` candidates (Milvus's limit per query) is answered from the
  index folder's vectors by the exact engine.

The collection (:meth:`sync`) holds one row per product: ``id`` (INT64 primary
key: the vector id, see :attr:`~fashionrec.index.IndexFolder.vector_ids`),
``row_checksum`` (INT64: CRC-32 of the row's vector and attributes, how a
second push tells what changed), the catalog attributes (VARCHAR, missing
values stored as the empty string) and ``vector`` (FLOAT_VECTOR with the
index's dimension, indexed for the engine's metric: L2 or COSINE). A property
set when it is made marks it as fashionrec's (no other collection is ever
updated or dropped), and a row of :data:`PUSHES_COLLECTION` records what it
holds (a token per finished push, the index generation, the count and the
ids' checksum), so an index folder never reads a collection holding another
index's vectors, or one a push is still filling.

The engine's folder in the index (``engines/milvus/<metric>/``) holds
``engine.json`` — the server URI without credentials, the collection, the
index type and parameters, the push token, the tuning — and ``norms.npy`` (the
vectors' squared norms, so that opening the engine reads no vector).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...catalog.filters import Filter
from ...catalog.model import BOOKKEEPING_COLUMNS
from ...crashpoints import crash_point
from ...errors import IndexFolderError
from ...output import atomic_folder, atomic_write
from ...validation import check_k
from ..approximate import RECALL_K, FileRows, _as_queries, vector_ids_checksum
from ..base import ENGINE_FILE, RangeResult, SearchEngine, check_vectors, range_by_growing_k, read_description
from ..exact import ExactEngine
from .connection import URI_ENV, MilvusError, ServerAddress, call, connect, import_pymilvus, server_address
from .expressions import (
    CHECKSUM_FIELD, ID_FIELD, MISSING, VECTOR_FIELD, FilterTranslator, ids_expression, quote, usable_field_name,
)

log = logging.getLogger(__name__)

COLLECTION_FORMAT = "fashionrec-milvus-1"
"""Value of the collection property :data:`PROP_FORMAT` (set when fashionrec makes a collection): the layout
this module writes and reads, and the mark of a collection fashionrec may update or drop."""
PROP_FORMAT = "fashionrec.format"
PUSHES_COLLECTION = "fashionrec_pushes"
"""The collection recording, per collection, the last push into it: its state ("pushing" while a push runs or
after one was interrupted, "complete" after), a fresh token per finished push (repeated in the index folder's
``engine.json``), the index generation, the count and the ids' checksum. A collection of its own because
Milvus 2.3 forgets altered collection properties when it restarts; rows it keeps."""

INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8")
METRIC_TYPES = {"euclidean": "L2", "cosine": "COSINE"}
MAX_TOPK = 16384
"""Most results Milvus returns for one query (its ``limit``); beyond, the exact engine answers."""
MAX_EF = 16384
MAX_VARCHAR_BYTES = 65535
NORMS_FILE = "norms.npy"
PUSH_COMMAND = "fashionrec milvus push"
SKIPPED_COLUMNS = ("id", *BOOKKEEPING_COLUMNS, "image_signature")
"""Product columns that are not attributes: never made fields of the collection."""
_U32 = float(np.finfo(np.float32).eps) / 2
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


class MilvusEngine(SearchEngine):
    """``milvus``: vectors in a Milvus collection, answers finished from the index folder's vectors.

    Parameters
    ----------
    metric:
        ``"euclidean"`` or ``"cosine"`` (the collection's L2 or COSINE index).
    uri:
        The server, e.g. ``http://127.0.0.1:19530`` (default:
        ``$FASHIONREC_MILVUS_URI``, else that one). Credentials in it are used,
        never recorded.
    collection:
        The collection's name (letters, digits, underscores). Default: ``fashionrec_<metric>``;
        ``fashionrec milvus push`` names it after the index folder.
    index_type:
        ``HNSW`` (default), ``IVF_FLAT``, ``IVF_SQ8`` or ``FLAT`` (exact answers).
    token, user, password:
        Credentials for a server with authentication (see :mod:`.connection`
        for the environment variables read otherwise). Never saved.
    M, ef_construction:
        HNSW: links per vector, and the candidates kept while building the graph.
    nlist:
        IVF: number of lists (default: a power of two near 4 sqrt(N), chosen when the collection is made).
    search_value:
        ``ef`` (HNSW) or ``nprobe`` (IVF) for queries; None: tuned at push time to reach ``target_recall``.
    target_recall:
        Recall@10 the tuning aims for (0 < target <= 1).
    rerank, min_candidates:
        Candidates fetched per result wanted (``rerank * k``, at least ``min_candidates``), re-ranked exactly.
    tune_queries:
        Catalog products the recall and latency are measured on at push time.
    timeout:
        Seconds each request to the server may take (connecting included).
    load_timeout:
        Seconds to wait for the server to flush, index and load the collection.
    batch_size:
        Rows per upsert request when pushing.
    seed:
        Seed of the tuning sample.
    """

    name = "milvus"
    exact_answers = False  # True on instances whose index type is FLAT
    needs_build = True
    SEARCH_VALUES = {
        "HNSW": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096),
        "IVF_FLAT": (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096),
        "IVF_SQ8": (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096),
        "FLAT": (),
    }
    SEARCH_PARAMS = {"HNSW": "ef", "IVF_FLAT": "nprobe", "IVF_SQ8": "nprobe", "FLAT": None}
    QUERY_BATCH = 16
    """Queries per search request: a FLAT search of many queries over a large collection can take longer than
    one request's time limit."""
    LIST_BATCH = 10_000
    """Rows per request when listing what the collection holds."""

    def __init__(
        self,
        metric: str = "euclidean",
        *,
        uri: str | None = None,
        collection: str | None = None,
        index_type: str = "HNSW",
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        M: int = 16,
        ef_construction: int = 200,
        nlist: int | None = None,
        search_value: int | None = None,
        target_recall: float = 0.95,
        rerank: int = 4,
        min_candidates: int = 40,
        tune_queries: int = 200,
        timeout: float = 10.0,
        load_timeout: float = 600.0,
        batch_size: int = 1000,
        seed: int = 0,
    ):
        super().__init__(metric)
        kind = str(index_type).upper()
        if kind not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
        collection = collection or f"fashionrec_{self.metric}"
        if not isinstance(collection, str) or not _COLLECTION_NAME.fullmatch(collection):
            raise ValueError(f"collection name {collection!r}: expected letters, digits and underscores "
                             "(starting with a letter or underscore, at most 255)")
        if collection == PUSHES_COLLECTION:
            raise ValueError(f"collection name {collection!r} is where fashionrec records its pushes; choose another")
        for name, value, least in (("M", M, 2), ("ef_construction", ef_construction, 1), ("rerank", rerank, 1),
                                   ("min_candidates", min_candidates, 1), ("tune_queries", tune_queries, 0),
                                   ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
        for name, value in (("nlist", nlist), ("search_value", search_value)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, got {value!r}")
        if not (0 < float(target_recall) <= 1):
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
        for name, value in (("timeout", timeout), ("load_timeout", load_timeout)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")
        self._address: ServerAddress = server_address(uri, token=token, user=user, password=password)
        self.collection = collection
        self.index_type = kind
        self.exact_answers = kind == "FLAT"
        self.M, self.ef_construction, self.nlist = M, ef_construction, nlist
        self._nlist_given = nlist is not None  # else chosen when the collection is made, and read back from it
        self.search_value = search_value
        self.target_recall = float(target_recall)
        self.rerank, self.min_candidates, self.tune_queries = rerank, min_candidates, tune_queries
        self.timeout, self.load_timeout = float(timeout), float(load_timeout)
        self.batch_size, self.seed = batch_size, seed
        self.progress: Callable[[int, int], None] | None = None
        """Called as ``progress(rows_sent, rows_to_send)`` while a push upserts rows."""
        self.tuning: dict[str, Any] = {}
        self.build_info: dict[str, Any] = {}
        self.last_sync: dict[str, Any] = {}
        """What the last push did: ``added``, ``changed``, ``removed``, ``unchanged`` rows, ``created`` (bool)."""
        self.description: dict[str, Any] | None = None
        self.index_generation: str | None = None
        self.push_token: str | None = None
        self._value: int | None = search_value
        self._fields: tuple[str, ...] = ()
        self._exact: ExactEngine | None = None
        self._id_order = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._translator: FilterTranslator | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def defaults_for(cls, index_path: Any, metric: str) -> dict[str, Any]:
        """Parameters for an index folder's engine when not given: its collection is named after the folder."""
        return {"collection": default_collection(index_path, metric)}

    @classmethod
    def build_command(cls, index_path: Any, metric: str) -> str:
        """The command that pushes an index folder's vectors (what error messages tell a user to run)."""
        return f"{PUSH_COMMAND} {index_path} --metric {metric}"

    @property
    def uri(self) -> str:
        """The server's URI, without credentials."""
        return self._address.uri

    def params(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "uri": self.uri, "collection": self.collection, "index_type": self.index_type,
            "M": self.M, "ef_construction": self.ef_construction, "nlist": self.nlist,
            "search_value": self.search_value, "target_recall": self.target_recall, "rerank": self.rerank,
            "min_candidates": self.min_candidates, "tune_queries": self.tune_queries, "timeout": self.timeout,
            "load_timeout": self.load_timeout, "batch_size": self.batch_size, "seed": self.seed,
        }

    @property
    def metric_type(self) -> str:
        return METRIC_TYPES[self.metric]

    @property
    def where(self) -> str:
        """The server and collection, as error messages name them."""
        return f"{self.uri} (collection {self.collection!r})"

    # ------------------------------------------------------------------ building

    def build(self, vectors, ids, attributes=None, *, recreate: bool = False) -> MilvusEngine:
        """Make the collection hold exactly these vectors (creating it, or updating it in place: see :meth:`sync`),
        then measure recall and latency — unless nothing changed in a collection this engine already measured."""
        reader = FileRows.of(vectors)  # before check_vectors, which gives a plain view of a memory map
        vectors, ids = check_vectors(vectors, ids, attributes)
        started = time.perf_counter()
        stats = self.sync(vectors, ids, attributes, recreate=recreate)
        self._set_local(vectors, ids, attributes, reader=reader)
        if _changed(stats) or not self.tuning or not self._recorded_on_server():
            self._tune(vectors, ids)
            self.build_info = {"vectors": int(len(ids)), "dim": int(vectors.shape[1]), **stats,
                               "seconds": round(time.perf_counter() - started, 3)}
            self._commit()
        log.info("milvus engine: %d vectors in %s, recall@%d %s (%.1f s)", len(ids), self.where, RECALL_K,
                 self.tuning.get("recall"), time.perf_counter() - started)
        return self

    def add(self, vectors, ids, attributes=None) -> MilvusEngine:
        """Add vectors under new ids (upserted into the collection)."""
        exact = self._fitted()
        vectors, ids = check_vectors(vectors, ids, attributes, dim=self.dim)
        merged = exact.add(vectors, ids, attributes)  # raises on ids already present, or attributes missing
        client = self._connect()
        texts = self._texts(attributes, self._fields, len(ids))
        self._upsert(client, vectors, ids, _row_checksums(vectors, texts), texts, np.arange(len(ids)))
        if self.index_type != "FLAT":
            call("flushing", self.where, client.flush, self.collection, timeout=self.load_timeout)
        self._check_count(client, merged.ntotal)
        with self._lock:
            self._use_exact(merged, self._fields, merged._attributes)
        self._commit()
        return self

    def sync(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None = None, *,
             recreate: bool = False) -> dict[str, Any]:
        """Make the collection hold exactly ``vectors`` (N, D) float32 under ``ids`` (N,) int64 with ``attributes``.

        Idempotent and resumable: what the collection already holds is listed
        (id and row checksum), rows missing or different are upserted in
        batches of ``batch_size`` (``progress`` is called after each), rows of
        ids no longer given are deleted; a second call with the same input
        sends nothing. The collection is made when missing, and made again when
        its layout (dimension, metric, index, attribute fields) differs or
        ``recreate`` is set — only a collection fashionrec made (its
        properties say so); another one of that name is an error. Then it is
        flushed, indexed and loaded (waiting up to ``load_timeout``), and the
        rows the server counts are checked. Returns :attr:`last_sync`.
        """
        vectors, ids = check_vectors(vectors, ids, attributes)
        fields = tuple(c for c in (attributes.columns if attributes is not None else ()) if c not in SKIPPED_COLUMNS)
        unusable = [c for c in fields if not usable_field_name(c)]
        if unusable:
            log.warning("attributes %s cannot be Milvus field names: not stored in %s (filters on them are sent "
                        "as the ids they keep)", unusable, self.collection)
            fields = tuple(c for c in fields if c not in unusable)
        texts = self._texts(attributes, fields, len(ids))
        checksums = _row_checksums(vectors, texts)
        client = self._connect()
        created = self._ensure_collection(client, vectors.shape[1], fields, len(ids), recreate)
        if created:
            held_ids, held_sums = np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            held_ids, held_sums = self._held_rows(client)
        order = np.argsort(held_ids)
        held_ids, held_sums = held_ids[order], held_sums[order]
        if len(held_ids):
            pos = np.minimum(np.searchsorted(held_ids, ids), len(held_ids) - 1)
            present = held_ids[pos] == ids
            same = present & (held_sums[pos] == checksums)
        else:
            present = same = np.zeros(len(ids), dtype=bool)
        stale = np.setdiff1d(held_ids, ids, assume_unique=True)
        send = np.flatnonzero(~same)
        changed = bool(len(send) or len(stale))
        if changed:  # until the push is recorded as complete, no index folder trusts the collection
            self._write_record(client, "pushing", "")
            self.push_token = None
        for start in range(0, len(stale), self.LIST_BATCH):
            part = stale[start : start + self.LIST_BATCH]
            call("deleting rows", self.where, client.delete, self.collection, filter=ids_expression(part),
                 timeout=self.timeout)
        self._upsert(client, vectors, ids, checksums, texts, send)
        if changed and self.index_type != "FLAT":
            # sealed segments get their index built. A FLAT collection has none to build, and Milvus scans
            # its growing segments exactly (no interim index for FLAT): no need to wait for a flush.
            call("flushing", self.where, client.flush, self.collection, timeout=self.load_timeout)
        self._wait_indexed(client)
        self._ensure_loaded(client)
        self._check_count(client, len(ids))
        self._fields = fields
        self.last_sync = {"created": created, "added": int(len(send) - np.count_nonzero(present[send])),
                          "changed": int(np.count_nonzero(present[send])), "removed": int(len(stale)),
                          "unchanged": int(np.count_nonzero(same))}
        log.info("milvus push to %s: %s", self.where, self.last_sync)
        return self.last_sync

    # ------------------------------------------------------------------ queries

    @property
    def ntotal(self) -> int:
        return 0 if self._exact is None else self._exact.ntotal

    @property
    def dim(self) -> int:
        return self._fitted().dim

    def search(self, queries, k, *, filter=None, exclude_ids=None) -> tuple[np.ndarray, np.ndarray]:
        exact = self._fitted()
        k = check_k(k)
        queries = _as_queries(queries, self.dim)
        if exclude_ids is not None and len(exclude_ids) != len(queries):
            raise ValueError(f"exclude_ids must give one list of ids per query ({len(queries)}), "
                             f"got {len(exclude_ids)}")
        flt = Filter.from_where(filter)
        mask = exact._mask(flt)  # validates the filter against the attributes (FilterError)
        n = self.ntotal
        k = min(k, n)
        nq = len(queries)
        out_d = np.full((nq, k), np.inf, dtype=np.float64)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        eligible = n if mask is None else int(np.count_nonzero(mask))
        if k == 0 or nq == 0 or eligible == 0:
            return out_d, out_i
        excluded = [set() for _ in range(nq)] if exclude_ids is None else [{int(i) for i in e} for e in exclude_ids]
        extra = max((len(e) for e in excluded), default=0)
        wanted = min(eligible, max(self.min_candidates, self.rerank * k) + extra)
        pending = np.arange(nq)
        expression: str | None = None  # the filter as Milvus reads it, made when first needed
        while len(pending):
            if wanted >= eligible or wanted > MAX_TOPK:
                # every eligible product wanted (a small filter, a k near N), or more than Milvus returns per
                # query: the index folder's vectors answer, exactly
                rest = exact.search(queries[pending], k, filter=flt,
                                    exclude_ids=None if exclude_ids is None else [exclude_ids[i] for i in pending])
                out_d[pending], out_i[pending] = rest
                break
            if expression is None:
                expression = "" if flt is None else self._translator.expression(flt, mask)
                if expression is None:  # no product holds the values asked for (the mask says the same)
                    break
            found = self._candidates(queries[pending], wanted, expression, n / eligible)
            retry = []
            for qi, (cand_ids, cand_dist) in zip(pending.tolist(), found):
                dist, best = self._finish(queries[qi], cand_ids, excluded[qi], k)
                if self.exact_answers and len(cand_ids) >= wanted \
                        and not self._beyond_doubt(queries[qi], cand_dist, dist, k):
                    retry.append(qi)  # a product not returned might still beat or tie the k-th: fetch more
                    continue
                out_d[qi, : len(best)] = dist
                out_i[qi, : len(best)] = best
            pending = np.array(retry, dtype=np.int64)
            wanted = min(eligible, wanted * 4)
        return out_d, out_i

    def range_search(self, queries, radius, *, filter=None, exclude_ids=None) -> RangeResult:
        """Everything within ``radius``: k-nearest searches with k grown while every result lies within it
        (exact for a FLAT collection; otherwise it may miss some, like :meth:`search`)."""
        return range_by_growing_k(self, _as_queries(queries, self._fitted().dim), radius, filter=filter,
                                  exclude_ids=exclude_ids)

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike) -> Path:
        """Record the push on the server (a fresh token, the index generation) and write the engine's folder
        (``engine.json`` and ``norms.npy``) as a whole."""
        exact = self._fitted()
        if not self._recorded_on_server():
            self._commit()
        description = {
            "engine": self.name, "params": self.params(), "build": self.build_info, "tuning": self.tuning,
            "vectors": {"count": self.ntotal, "ids_crc32": vector_ids_checksum(exact._ids),
                        "index_generation": self.index_generation},
            "milvus": {"uri": self.uri, "collection": self.collection, "index_type": self.index_type,
                       "metric_type": self.metric_type, "push": self.push_token, "fields": list(self._fields),
                       "missing_value": MISSING},
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        norms = exact._scan._sq_norms

        def fill(new: Path) -> None:
            atomic_write(new / NORMS_FILE, lambda f: np.save(f, norms))
            text = json.dumps(description, indent=2) + "\n"
            atomic_write(new / ENGINE_FILE, lambda f: f.write(text.encode()))

        return atomic_folder(folder, fill)

    @classmethod
    def load(cls, folder, vectors, ids, attributes=None) -> MilvusEngine:
        """Open the engine saved in ``folder`` over the index's vectors, and check the collection it names.

        IndexFolderError when the index folder changed since the push (or
        ``norms.npy`` is damaged); MilvusError when the server cannot be
        reached, or the collection is missing, of another dimension, or holds
        other vectors than this push left there.
        """
        folder = Path(folder)
        reader = FileRows.of(vectors)
        vectors, ids = check_vectors(vectors, ids, attributes)
        engine = cls._from_folder(folder)
        recorded = (engine.description or {}).get("vectors") or {}
        index_dir = _index_dir(folder)
        if recorded.get("count") != len(ids) or recorded.get("ids_crc32") != vector_ids_checksum(ids):
            raise IndexFolderError(
                f"the milvus engine in {folder} was pushed from other vectors ({recorded.get('count')} of them) than "
                f"the index holds now ({len(ids)}); push it again with `{PUSH_COMMAND} {index_dir}`")
        try:
            sq_norms = np.load(folder / NORMS_FILE, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"cannot read the milvus engine in {folder}: {exc}; push it again with "
                                   f"`{PUSH_COMMAND} {index_dir}`") from None
        if sq_norms.shape != (len(ids),):
            raise IndexFolderError(f"the milvus engine in {folder} is damaged ({NORMS_FILE} holds {sq_norms.shape}, "
                                   f"expected ({len(ids)},)); push it again with `{PUSH_COMMAND} {index_dir}`")
        engine._set_local(vectors, ids, attributes, sq_norms=sq_norms, reader=reader)
        engine._check_collection(index_dir, vectors.shape[1])
        return engine

    @classmethod
    def open_for_update(cls, folder: str | os.PathLike) -> MilvusEngine:
        """The engine saved in ``folder``, to :meth:`update` its collection to the index's vectors of now."""
        return cls._from_folder(Path(folder))

    def update(self, vectors, ids, attributes=None) -> str:
        """Push the index's vectors of now (only what changed is sent); returns what was done."""
        reader = FileRows.of(vectors)
        vectors, ids = check_vectors(vectors, ids, attributes)
        stats = self.sync(vectors, ids, attributes)
        self._set_local(vectors, ids, attributes, reader=reader)
        if stats["created"]:
            action = f"pushed ({stats['added']} vectors)"
        elif stats["added"] or stats["changed"] or stats["removed"]:
            action = f"updated (+{stats['added']} added, {stats['changed']} changed, -{stats['removed']} removed)"
        else:
            return "unchanged"
        self._tune(vectors, ids)
        self.build_info.update(vectors_now=int(len(ids)), **stats)
        return action

    @classmethod
    def _from_folder(cls, folder: Path) -> MilvusEngine:
        description = read_description(folder, expected=cls.name)
        params = dict(description["params"])
        override = os.environ.get(URI_ENV)
        if override and override != params.get("uri"):
            log.info("milvus engine in %s: connecting to %s (from $%s) instead of the recorded %s", folder,
                     server_address(override).uri, URI_ENV, params.get("uri"))
            params["uri"] = override
        try:
            engine = cls(**params)
        except (TypeError, ValueError) as exc:
            raise IndexFolderError(f"{folder / ENGINE_FILE}: unusable parameters ({exc}); push the index again "
                                   f"with `{PUSH_COMMAND} {_index_dir(folder)}`") from None
        engine.adopt(description)
        return engine

    def adopt(self, description: Mapping[str, Any]) -> None:
        """Take the measured state of a saved ``engine.json`` (tuning, build record, index generation, push token)."""
        self.description = dict(description)
        self.tuning = dict(description.get("tuning") or {})
        self.build_info = dict(description.get("build") or {})
        self.index_generation = (description.get("vectors") or {}).get("index_generation")
        record = description.get("milvus") or {}
        self.push_token = record.get("push")
        self._fields = tuple(record.get("fields") or ())
        if self.search_value is None and isinstance(self.tuning.get("value"), int):
            self._value = self.tuning["value"]

    # ------------------------------------------------------------------ the server

    def _connect(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = connect(self._address, self.timeout)
                client = self._client
        return client

    def _ensure_collection(self, client: Any, dim: int, fields: tuple[str, ...], n: int, recreate: bool) -> bool:
        """Make sure the collection exists with the layout wanted; True when it was (re)made (it is empty)."""
        if call("looking up the collection", self.where, client.has_collection, self.collection, timeout=self.timeout):
            described = call("describing the collection", self.where, client.describe_collection, self.collection,
                             timeout=self.timeout)
            properties = described.get("properties") or {}
            if properties.get(PROP_FORMAT) != COLLECTION_FORMAT:
                raise MilvusError(
                    f"collection {self.collection!r} on {self.uri} was not made by fashionrec (it has no "
                    f"{PROP_FORMAT} = {COLLECTION_FORMAT} property): it is left alone; choose another collection name")
            why = "asked to (--recreate)" if recreate else self._layout_difference(client, described, dim, fields)
            if why is None:
                return False
            log.warning("recreating the Milvus collection %s: %s", self.where, why)
            call("dropping the collection", self.where, client.drop_collection, self.collection, timeout=self.timeout)
        pymilvus = import_pymilvus()
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                     description="fashionrec product vectors")
        schema.add_field(ID_FIELD, pymilvus.DataType.INT64, is_primary=True)
        schema.add_field(CHECKSUM_FIELD, pymilvus.DataType.INT64)
        for name in fields:
            schema.add_field(name, pymilvus.DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
        schema.add_field(VECTOR_FIELD, pymilvus.DataType.FLOAT_VECTOR, dim=int(dim))
        if self.index_type.startswith("IVF") and self.nlist is None:
            self.nlist = lists_for(n)
        index_params = client.prepare_index_params()
        index_params.add_index(field_name=VECTOR_FIELD, index_type=self.index_type, metric_type=self.metric_type,
                               params=self._index_params())
        call("creating the collection", self.where, client.create_collection, self.collection, schema=schema,
             index_params=index_params, consistency_level="Bounded", timeout=self.load_timeout,
             properties={PROP_FORMAT: COLLECTION_FORMAT})
        return True

    def _index_params(self) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"M": self.M, "efConstruction": self.ef_construction}
        if self.index_type.startswith("IVF"):
            return {"nlist": self.nlist}
        return {}

    def _layout_difference(self, client: Any, described: Mapping[str, Any], dim: int,
                           fields: tuple[str, ...]) -> str | None:
        """Why the existing collection cannot hold these vectors as it is (None when it can)."""
        held = {f["name"]: f for f in described.get("fields") or []}
        vector = held.get(VECTOR_FIELD)
        held_dim = int((vector or {}).get("params", {}).get("dim", -1))
        if held_dim != int(dim):
            return f"it holds {held_dim}-dimension vectors, these have {dim}"
        wanted = {ID_FIELD, CHECKSUM_FIELD, VECTOR_FIELD, *fields}
        if set(held) != wanted:
            return f"its fields are {sorted(held)}, these vectors need {sorted(wanted)}"
        index = self._describe_index(client)
        if index is None:
            return "its vectors have no index"
        if str(index.get("index_type")).upper() != self.index_type or index.get("metric_type") != self.metric_type:
            return (f"its index is {index.get('index_type')} for {index.get('metric_type')}, "
                    f"wanted {self.index_type} for {self.metric_type}")
        if self.index_type == "HNSW":
            expected = {"M": self.M, "efConstruction": self.ef_construction}
        else:
            expected = {"nlist": self.nlist} if self.index_type != "FLAT" and self._nlist_given else {}
        for key, value in expected.items():
            if str(index.get(key)) != str(value):
                return f"its index has {key} = {index.get(key)}, wanted {value}"
        if self.index_type != "FLAT" and self.index_type != "HNSW" and not self._nlist_given:
            self.nlist = int(index.get("nlist"))
        return None

    def _describe_index(self, client: Any) -> dict[str, Any] | None:
        names = call("listing the indexes", self.where, client.list_indexes, self.collection, timeout=self.timeout)
        if not names:
            return None
        return call("describing the index", self.where, client.describe_index, self.collection, names[0],
                    timeout=self.timeout)

    def _pushes(self, client: Any) -> None:
        """Make sure :data:`PUSHES_COLLECTION` exists and is loaded (made on the first push to a server)."""
        where = f"{self.uri} (collection {PUSHES_COLLECTION!r})"
        if not call("looking up the record of pushes", where, client.has_collection, PUSHES_COLLECTION,
                    timeout=self.timeout):
            pymilvus = import_pymilvus()
            schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                         description="the last fashionrec push into each collection")
            schema.add_field("collection", pymilvus.DataType.VARCHAR, max_length=255, is_primary=True)
            for name in ("state", "push", "index_generation"):
                schema.add_field(name, pymilvus.DataType.VARCHAR, max_length=255)
            schema.add_field("count", pymilvus.DataType.INT64)
            schema.add_field("ids_crc32", pymilvus.DataType.INT64)
            schema.add_field(VECTOR_FIELD, pymilvus.DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one; unused
            index_params = client.prepare_index_params()
            index_params.add_index(field_name=VECTOR_FIELD, index_type="FLAT", metric_type="L2")
            try:
                client.create_collection(PUSHES_COLLECTION, schema=schema, index_params=index_params,
                                         properties={PROP_FORMAT: COLLECTION_FORMAT}, timeout=self.load_timeout)
            except Exception as exc:  # another push made it meanwhile
                if not call("looking up the record of pushes", where, client.has_collection, PUSHES_COLLECTION,
                            timeout=self.timeout):
                    raise MilvusError(f"Milvus server {where}: creating it failed: {exc}") from None
        self._ensure_loaded(client, PUSHES_COLLECTION)

    def _write_record(self, client: Any, state: str, token: str) -> None:
        """Record the state of the push into the collection (with this engine's vectors when complete)."""
        self._pushes(client)
        exact = self._exact
        record = {"collection": self.collection, "state": state, "push": token,
                  "index_generation": self.index_generation or "",
                  "count": exact.ntotal if exact is not None and state == "complete" else -1,
                  "ids_crc32": vector_ids_checksum(exact._ids) if exact is not None and state == "complete" else -1,
                  VECTOR_FIELD: [0.0, 0.0]}
        call("recording the push", self.where, client.upsert, PUSHES_COLLECTION, [record], timeout=self.timeout)

    def _read_record(self, client: Any) -> dict[str, Any] | None:
        """The record of the last push into the collection (None when there is none), read strongly consistent."""
        if not call("looking up the record of pushes", self.where, client.has_collection, PUSHES_COLLECTION,
                    timeout=self.timeout):
            return None
        self._ensure_loaded(client, PUSHES_COLLECTION)
        rows = call("reading the record of pushes", self.where, client.query, PUSHES_COLLECTION,
                    filter=f"collection == {quote(self.collection)}",
                    output_fields=["state", "push", "index_generation", "count", "ids_crc32"],
                    consistency_level="Strong", timeout=self.timeout)
        return dict(rows[0]) if rows else None

    def _held_rows(self, client: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, row checksums)`` of every row the collection holds, listed in id order a batch at a time."""
        self._strong_count(client)  # every write before now becomes visible to the listing below
        ids: list[int] = []
        sums: list[int] = []
        last = -1
        while True:
            rows = call("listing the collection", self.where, client.query, self.collection,
                        filter=f"{ID_FIELD} > {last}", output_fields=[ID_FIELD, CHECKSUM_FIELD], limit=self.LIST_BATCH,
                        timeout=self.timeout, iterator="True", reduce_stop_for_best="True")
            if not rows:
                break
            batch_ids = [int(row[ID_FIELD]) for row in rows]
            ids += batch_ids
            sums += [int(row[CHECKSUM_FIELD]) for row in rows]
            last = max(batch_ids)
            if len(rows) < self.LIST_BATCH:
                break
        return np.array(ids, dtype=np.int64), np.array(sums, dtype=np.int64)

    def _upsert(self, client: Any, vectors: np.ndarray, ids: np.ndarray, checksums: np.ndarray,
                texts: dict[str, list[str]], rows: np.ndarray) -> None:
        """Upsert the given rows in batches, reporting progress after each."""
        total = len(rows)
        if self.progress is not None and total:
            self.progress(0, total)
        for start in range(0, total, self.batch_size):
            part = rows[start : start + self.batch_size].tolist()
            batch = []
            for row in part:
                record = {ID_FIELD: int(ids[row]), CHECKSUM_FIELD: int(checksums[row]),
                          VECTOR_FIELD: np.asarray(vectors[row], dtype=np.float32)}
                for name, values in texts.items():
                    record[name] = values[row]
                batch.append(record)
            crash_point("milvus upsert batch")
            call("upserting rows", self.where, client.upsert, self.collection, batch, timeout=self.load_timeout)
            if self.progress is not None:
                self.progress(min(start + self.batch_size, total), total)

    def _wait_indexed(self, client: Any) -> None:
        """Wait until the server has indexed every sealed segment (small segments are scanned, never indexed)."""
        deadline = time.monotonic() + self.load_timeout
        while True:
            index = self._describe_index(client) or {}
            pending = int(index.get("pending_index_rows") or 0)
            state = str(index.get("state", "Finished"))
            if pending == 0 or state == "Failed":
                if state == "Failed":
                    raise MilvusError(f"Milvus server {self.where}: building the {self.index_type} index failed: "
                                      f"{index.get('index_state_fail_reason') or 'no reason given'}")
                return
            if time.monotonic() > deadline:
                raise MilvusError(f"Milvus server {self.where}: the {self.index_type} index was not built within "
                                  f"{self.load_timeout:g} s ({pending} rows pending); run the push again later")
            time.sleep(0.5)

    def _ensure_loaded(self, client: Any, collection: str | None = None) -> None:
        """Load the collection into the server's memory when it is not, and wait until it is (a restarted server
        reloads by itself, answering "loading" meanwhile)."""
        collection = collection or self.collection
        deadline = time.monotonic() + self.load_timeout
        asked = False
        while True:
            state = str(call("asking the load state", self.where, client.get_load_state, collection,
                             timeout=self.timeout).get("state"))
            if state.endswith("Loaded") and not state.endswith("NotLoaded"):
                return
            if not asked and "NotLoad" in state:
                call("loading the collection", self.where, client.load_collection, collection,
                     timeout=self.load_timeout)
                asked = True
                continue
            if time.monotonic() > deadline:
                raise MilvusError(f"Milvus server {self.uri}: collection {collection!r} was not loaded within "
                                  f"{self.load_timeout:g} s (state {state}); try again later")
            time.sleep(0.5)

    def _strong_count(self, client: Any) -> int:
        rows = call("counting rows", self.where, client.query, self.collection, filter="",
                    output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout)
        return int(rows[0]["count(*)"])

    def _check_count(self, client: Any, expected: int) -> None:
        # A strongly consistent count: after it, every write is visible to the (bounded-consistency) searches too.
        held = self._strong_count(client)
        if held != expected:
            raise MilvusError(f"Milvus server {self.where}: the collection holds {held} rows after the push, "
                              f"expected {expected}; run the push again")

    def _commit(self) -> None:
        """Record on the server that the collection holds exactly this engine's vectors (a fresh push token)."""
        self._fitted()
        token = uuid.uuid4().hex
        self._write_record(self._connect(), "complete", token)
        self.push_token = token

    def _recorded_on_server(self) -> bool:
        """True when the server records this engine's push as complete, for its index generation and vectors."""
        if not self.push_token or self._exact is None:
            return False
        record = self._read_record(self._connect()) or {}
        return (record.get("state") == "complete" and record.get("push") == self.push_token
                and record.get("index_generation") == (self.index_generation or "")
                and record.get("count") == self.ntotal
                and record.get("ids_crc32") == vector_ids_checksum(self._exact._ids))

    def _check_collection(self, index_dir: str, dim: int) -> None:
        """Refuse a collection that is missing, of another dimension, or not the one this push left."""
        client = self._connect()
        fix = f"`{PUSH_COMMAND} {index_dir} --uri {self.uri} --collection {self.collection}`"
        if not call("looking up the collection", self.where, client.has_collection, self.collection,
                    timeout=self.timeout):
            raise MilvusError(f"collection {self.collection!r} is not on the Milvus server at {self.uri}; push the "
                              f"index with {fix}")
        described = call("describing the collection", self.where, client.describe_collection, self.collection,
                         timeout=self.timeout)
        held = {f["name"]: f for f in described.get("fields") or []}
        held_dim = int((held.get(VECTOR_FIELD) or {}).get("params", {}).get("dim", -1))
        if held_dim != dim:
            raise MilvusError(f"collection {self.collection!r} on {self.uri} holds {held_dim}-dimension vectors, the "
                              f"index {dim}-dimension ones; push the index with {fix}")
        record = self._read_record(client) or {}
        if record.get("push") != self.push_token or not self.push_token:
            if not record:
                why = f"no push into it is recorded (in {PUSHES_COLLECTION!r})"
            elif record.get("state") == "pushing":
                why = "a push into it has not finished (or was interrupted)"
            else:
                why = (f"it holds the vectors of another push ({record.get('count', '?')} vectors, index "
                       f"generation {record.get('index_generation') or '?'})")
            raise MilvusError(f"collection {self.collection!r} on {self.uri} does not hold this index's vectors: "
                              f"{why}; push the index with {fix}")
        self._ensure_loaded(client)

    # ------------------------------------------------------------------ searching

    def _candidates(self, queries: np.ndarray, wanted: int, expression: str,
                    scale: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the ids Milvus returns (up to ``wanted``) and its distances (squared L2 or similarity)."""
        client = self._connect()
        params = self._search_params(wanted, scale)
        out = []
        for start in range(0, len(queries), self.QUERY_BATCH):
            block = queries[start : start + self.QUERY_BATCH]
            answer = call("searching", self.where, client.search, self.collection, data=list(block), limit=wanted,
                          filter=expression, anns_field=VECTOR_FIELD, output_fields=[],
                          search_params={"metric_type": self.metric_type, "params": params},
                          consistency_level="Bounded", timeout=self.timeout)
            for hits in answer:
                out.append((np.fromiter((hit["id"] for hit in hits), dtype=np.int64, count=len(hits)),
                            np.fromiter((hit["distance"] for hit in hits), dtype=np.float64, count=len(hits))))
        return out

    def _search_params(self, wanted: int, scale: float) -> dict[str, Any]:
        value = self._search_value()
        if self.index_type == "HNSW":
            # a filter keeping a fraction of the products: keep that many times more candidates while walking
            return {"ef": int(min(MAX_EF, max(wanted, math.ceil(value * max(1.0, scale)))))}
        if self.index_type.startswith("IVF"):
            # a filter keeping a fraction of the products: visit that many times more lists
            return {"nprobe": int(min(self.nlist or 65536, math.ceil(value * max(1.0, scale))))}
        return {}

    def _search_value(self) -> int:
        if self._value is not None:
            return int(self._value)
        return {"HNSW": 64, "IVF_FLAT": 16, "IVF_SQ8": 16}.get(self.index_type, 0)

    def _finish(self, query: np.ndarray, cand_ids: np.ndarray, excluded: set[int], k: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of Milvus's candidates: float64 distances and ids, sorted, ties by id."""
        if excluded:
            cand_ids = cand_ids[~np.isin(cand_ids, np.fromiter(excluded, np.int64, len(excluded)))]
        sorted_ids, sorted_rows = self._id_order
        pos = np.minimum(np.searchsorted(sorted_ids, cand_ids), len(sorted_ids) - 1)
        known = sorted_ids[pos] == cand_ids
        if not known.all():
            log.warning("Milvus collection %s returned %d ids the index folder does not hold; ignored (push the "
                        "index again)", self.where, int((~known).sum()))
        rows = sorted_rows[pos[known]]
        if not len(rows):
            return np.zeros(0), np.zeros(0, np.int64)
        exact = self._exact
        dist, best = exact._scan.rerank(query, rows, k)
        return dist, exact._ids[best]

    def _beyond_doubt(self, query: np.ndarray, milvus_distances: np.ndarray, dist: np.ndarray, k: int) -> bool:
        """True when no product Milvus left out can beat or tie the k-th exact distance ``dist[k - 1]``.

        Every product left out is, by Milvus's float32 arithmetic, at least as
        far as the farthest one returned; its true distance is at most the
        float32 rounding bound below that.
        """
        if len(dist) < k or not len(milvus_distances):
            return False
        kth = float(dist[k - 1])
        q_norm = float(np.linalg.norm(query.astype(np.float64)))
        gamma = self._gamma
        if self.metric == "euclidean":
            farthest = float(np.max(milvus_distances))  # squared
            bound = 2.02 * (gamma + 4 * _U32) * (q_norm + self._max_norm) ** 2 + 1e-30
            return farthest - bound > kth * kth
        farthest = 1.0 - float(np.min(milvus_distances))  # similarity -> cosine distance
        return farthest - 4.04 * (gamma + 8 * _U32) - 1e-7 > kth

    # ------------------------------------------------------------------ tuning

    def _tune(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Measure recall@10 against the exact engine, and query latency, on ``tune_queries`` catalog products
        (each query's own product excluded), for increasing ``ef`` / ``nprobe``; keep the first whose recall
        reaches ``target_recall`` with 95 % confidence (one-sided lower bound)."""
        n = len(ids)
        count = min(self.tune_queries, n)
        if n < 2 or count == 0:
            self.tuning = {"queries": 0}
            return
        rows = np.sort(np.random.default_rng(self.seed).choice(n, size=count, replace=False))
        queries = np.ascontiguousarray(vectors[rows])
        own = [[int(i)] for i in ids[rows]]
        k = min(RECALL_K, n - 1)
        truth = self._exact.search(queries, k, exclude_ids=own)[1]
        param = self.SEARCH_PARAMS[self.index_type]
        if self.search_value is not None:
            values = [self.search_value]
        else:  # nprobe beyond the number of lists visits nothing more
            values = [v for v in self.SEARCH_VALUES[self.index_type]
                      if param != "nprobe" or self.nlist is None or v <= self.nlist]
        curve = []
        for value in values or [None]:
            self._value = value
            found = self.search(queries, k, exclude_ids=own)[1]
            per_query = np.array([len(set(t[t >= 0].tolist()) & set(f.tolist())) / max(1, int((t >= 0).sum()))
                                  for t, f in zip(truth, found)])
            recall = float(per_query.mean())
            low = recall - 1.645 * float(per_query.std(ddof=1)) / math.sqrt(len(per_query)) \
                if len(per_query) > 1 else recall
            times = []
            for qi in range(min(50, count)):
                started = time.perf_counter()
                self.search(queries[qi], k, exclude_ids=[own[qi]])
                times.append((time.perf_counter() - started) * 1000)
            curve.append({param or "value": value, "recall": round(recall, 4), "recall_low": round(low, 4),
                          "p50_ms": round(float(np.percentile(times, 50)), 3),
                          "p99_ms": round(float(np.percentile(times, 99)), 3)})
            if low >= self.target_recall:
                break
        chosen = curve[-1]
        self._value = chosen.get(param) if param else None
        self.tuning = {"k": k, "queries": count, "target_recall": self.target_recall, "param": param,
                       "value": self._value, "recall": chosen["recall"], "recall_low": chosen["recall_low"],
                       "p50_ms": chosen["p50_ms"], "p99_ms": chosen["p99_ms"],
                       "reached": chosen["recall_low"] >= self.target_recall, "curve": curve}

    # ------------------------------------------------------------------ local state

    def _set_local(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None, *,
                   sq_norms: np.ndarray | None = None, reader: FileRows | None = None) -> None:
        exact = ExactEngine(self.metric).build(vectors, ids, attributes, sq_norms=sq_norms)
        exact._scan.row_reader = reader
        with self._lock:
            self._use_exact(exact, self._fields, exact._attributes)

    def _use_exact(self, exact: ExactEngine, fields: tuple[str, ...], attributes: pd.DataFrame | None) -> None:
        order = np.argsort(exact._ids, kind="stable")
        self._id_order = (exact._ids[order], order.astype(np.int64))
        self._translator = FilterTranslator(attributes, [f for f in fields if attributes is not None
                                                         and f in attributes.columns], exact._ids)
        scan = exact._scan
        d = scan.dim
        self._gamma = d * _U32 / (1 - d * _U32) if d * _U32 < 0.5 else 1.0
        self._max_norm = scan._max_norm
        self._exact = exact

    def _fitted(self) -> ExactEngine:
        if self._exact is None:
            raise RuntimeError("the milvus engine is empty; call build(vectors, ids) or load it from its folder first")
        return self._exact

    @staticmethod
    def _texts(attributes: pd.DataFrame | None, fields: tuple[str, ...], n: int) -> dict[str, list[str]]:
        """Each field's values as text (missing: :data:`MISSING`), checked against Milvus's VARCHAR limit."""
        texts = {}
        for name in fields:
            column = attributes[name].astype("string")
            values = column.fillna(MISSING).tolist()
            longest = column.str.len().max() if len(column) else 0
            if longest is not pd.NA and longest and longest * 4 > MAX_VARCHAR_BYTES:  # 4 bytes: most per character
                sizes = [len(v.encode("utf-8")) for v in values]
                worst = int(np.argmax(sizes))
                if sizes[worst] > MAX_VARCHAR_BYTES:
                    raise MilvusError(f"attribute {name!r} of row {worst} is {sizes[worst]} bytes long; a Milvus "
                                      f"text field holds at most {MAX_VARCHAR_BYTES}")
            texts[name] = values
        return texts


def default_collection(index_dir: str | os.PathLike, metric: str) -> str:
    """``fashionrec_<index folder name>_<6 hex digits>_<metric>`` for the first push of an index folder.

    The digits (of the folder's absolute path) keep two folders of the same
    name apart; later pushes reuse the name recorded in the folder, wherever it
    has moved. Only the letters Milvus allows in a collection name.
    """
    path = os.path.abspath(index_dir)
    stem = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).name).strip("_")[:200] or "index"
    return f"fashionrec_{stem}_{zlib.crc32(path.encode('utf-8')) & 0xFFFFFF:06x}_{metric}"


def _changed(stats: Mapping[str, Any]) -> bool:
    return bool(stats.get("created") or stats.get("added") or stats.get("changed") or stats.get("removed"))


def lists_for(n: int) -> int:
    """The number of IVF lists for ``n`` vectors: a power of two near 4 sqrt(n), at least 1, at most 65536."""
    if n < 16:
        return 1
    return int(min(65536, 2 ** round(math.log2(4 * math.sqrt(n)))))


def _row_checksums(vectors: np.ndarray, texts: Mapping[str, list[str]]) -> np.ndarray:
    """(N,) int64 CRC-32 of each row's vector bytes and attribute texts: equal rows, equal checksums."""
    n = len(vectors)
    out = np.empty(n, dtype=np.int64)
    names = list(texts)
    for start in range(0, n, 4096):
        block = np.ascontiguousarray(vectors[start : start + 4096], dtype=np.float32)
        for j in range(len(block)):
            crc = zlib.crc32(block[j].tobytes())
            for name in names:
                crc = zlib.crc32(f"\x1f{name}\x1e{texts[name][start + j]}".encode("utf-8"), crc)
            out[start + j] = crc
    return out


def _index_dir(folder: Path) -> str:
    """The index folder an engine folder ``<index>/engines/milvus/<metric>`` belongs to ("INDEX_DIR" otherwise)."""
    return str(folder.parents[2]) if len(folder.parents) > 2 and folder.parent.parent.name == "engines" \
        else "INDEX_DIR"

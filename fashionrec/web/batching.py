"""Concurrent "similar to this product" requests answered together, in one pass over the vectors.

An exact search reads every vector for every query; sixteen queries read
sixteen times the same memory. :class:`SimilarBatcher` lets each request
wait for an answer while one worker thread answers *all* the requests that
are waiting with the same parameters (k, metric, filter) by one
:meth:`~fashionrec.recommend.Recommender.recommendations_many` call — one
matrix product instead of many matrix-vector products. Nothing is delayed on
purpose: a lone request is answered at once (on the event loop: a thread hop
would cost more than the search), and requests that arrive while a batch is
being computed form the next batch ("natural batching"), so batches grow only
when the server is busy; batches of several queries run on a worker thread.

Answers are exactly those of one query at a time; a request whose product id
is unknown is answered (404) before it joins a batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..catalog.filters import Filter
from ..recommend import Recommendations, Recommender

log = logging.getLogger(__name__)

MAX_BATCH = 64
"""Most queries answered by one matrix product."""


class SimilarBatcher:
    """Batches concurrent similar-by-id queries of one event loop (see the module docstring)."""

    def __init__(self, recommender: Recommender, *, max_batch: int = MAX_BATCH):
        self.recommender = recommender
        self.max_batch = int(max_batch)
        # (k, metric, filter) -> waiting (product id, future) pairs, in arrival order
        self._waiting: OrderedDict[tuple, list[tuple[Any, asyncio.Future]]] = OrderedDict()
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def recommendations(self, product_id: Any, k: int, where: Filter | None, metric: str,
                              dedupe: bool = False) -> Recommendations:
        """The answer of ``recommender.recommendations(product_id, k, where, metric, dedupe=dedupe)``, in a batch."""
        self.recommender.row_of(product_id)  # an unknown id fails alone, now
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a test client's): nothing of the old one carries over
            self._loop, self._waiting, self._worker = loop, OrderedDict(), None
        future = loop.create_future()
        self._waiting.setdefault((k, metric, where, bool(dedupe)), []).append((product_id, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Answer waiting requests, one batch at a time, until none waits."""
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            batch, rest = queue[: self.max_batch], queue[self.max_batch :]
            if rest:
                self._waiting[key] = rest
                self._waiting.move_to_end(key)
            else:
                del self._waiting[key]
            k, metric, where, dedupe = key
            ids = [pid for pid, _ in batch]
            try:
                # A lone query (a millisecond or so) runs here: a thread hop would cost more than it runs. A batch,
                # or a dedupe query (its first one estimates the duplicate threshold, seconds), runs off the event
                # loop, which meanwhile gathers the next batch.
                if len(ids) == 1 and not dedupe:
                    answers = self.recommender.recommendations_many(ids, k, where, metric)
                else:
                    answers = await run_in_threadpool(self.recommender.recommendations_many, ids, k, where, metric,
                                                      dedupe=dedupe)
            except Exception as exc:  # one failure answers the whole batch (they share parameters)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            log.debug("answered %d similar-by-id queries in one batch", len(batch))
            for (_, future), answer in zip(batch, answers):
                if not future.done():
                    future.set_result(answer)

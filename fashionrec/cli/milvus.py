"""``fashionrec milvus ...``: the commands of the Milvus search engine (a Typer sub-application).

``fashionrec milvus push INDEX_DIR`` puts an index folder's vectors into a
collection of a Milvus server and records it in the folder; then
``fashionrec recommend INDEX_DIR --engine milvus`` (and ``evaluate``,
``serve``, ``duplicates``) answer through the server. Attached to the main
application as ``app.add_typer(milvus_app, name="milvus")``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FashionrecError
from .app import console, one_line_errors

milvus_app = typer.Typer(
    name="milvus",
    help="Keep an index folder's vectors in a Milvus server (standalone or cluster) and search them there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def milvus_command(func):
    """Register ``func`` on :data:`milvus_app`, its errors reported as one line (as :func:`.app.cli_command` does)."""

    @functools.wraps(func)
    def quiet_pymilvus(*args, **kwargs):
        # pymilvus logs each failed request as an error with its traceback; the failure reaches the user as our
        # one-line error instead (its records show with -v).
        if logging.getLogger().getEffectiveLevel() > logging.INFO:
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        return func(*args, **kwargs)

    interrupted = "the rows sent are kept; run the same command again to send the rest"
    return milvus_app.command()(one_line_errors(quiet_pymilvus, interrupted=interrupted))


@milvus_command
def push(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    uri: Annotated[Optional[str], typer.Option(
        "--uri", help="The Milvus server. Default: $FASHIONREC_MILVUS_URI, else the folder's last push, "
                      "else http://127.0.0.1:19530.")] = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", help="Token of a server with authentication (user:password, or an API key); "
                        "default $FASHIONREC_MILVUS_TOKEN. Never saved.")] = None,
    user: Annotated[Optional[str], typer.Option("--user", help="User of a server with authentication.")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", help="Password of --user (default $FASHIONREC_MILVUS_PASSWORD). Never saved.")] = None,
    collection: Annotated[Optional[str], typer.Option(
        "--collection", help="Collection name. Default: the folder's last push, else "
                             "fashionrec_<folder name>_<metric>.")] = None,
    index_type: Annotated[Optional[str], typer.Option(
        "--index-type", help="HNSW (default), IVF_FLAT, IVF_SQ8, or FLAT (exact answers).")] = None,
    metric: Annotated[str, typer.Option(help="Distance the collection is indexed for: euclidean or cosine.")]
    = "euclidean",
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Rows per upsert request (default 1000).")] = None,
    target_recall: Annotated[Optional[float], typer.Option(
        "--target-recall", help="Recall@10 the search parameter (ef, nprobe) is tuned to reach (default 0.95).")]
    = None,
    recreate: Annotated[bool, typer.Option(
        "--recreate", help="Drop the collection and make it again (only one fashionrec made).")] = False,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", metavar="SECONDS", help="Most seconds one request to the server may take (default 10).")]
    = None,
) -> None:
    """Push an index folder's vectors to a Milvus collection (only what changed is sent; re-run to resume)."""
    from ..search.milvus import INDEX_TYPES, push_index
    from ..validation import check_metric
    from .render import progress_bar

    check_metric(metric)
    if index_type is not None and index_type.upper() not in INDEX_TYPES:
        raise FashionrecError(f"--index-type {index_type}: expected one of {', '.join(INDEX_TYPES)}")
    if batch_size is not None and batch_size < 1:
        raise FashionrecError(f"--batch-size {batch_size}: expected a whole number of rows, 1 or more")
    if target_recall is not None and not 0 < target_recall <= 1:
        raise FashionrecError(f"--target-recall {target_recall}: expected a recall@10 above 0 and at most 1")
    if timeout is not None and not 0 < timeout < float("inf"):
        raise FashionrecError(f"--timeout {timeout}: expected a number of seconds above 0")
    options = {} if timeout is None else {"timeout": timeout}
    with progress_bar("pushing", "vectors") as progress:
        summary = push_index(index_dir, metric=metric, uri=uri, token=token, user=user, password=password,
                             collection=collection, index_type=index_type.upper() if index_type else None,
                             batch_size=batch_size, target_recall=target_recall, recreate=recreate,
                             progress=progress, **options)
    what = ("nothing to send: the collection holds this index already"
            if not (summary.created or summary.added or summary.changed or summary.removed)
            else f"{summary.added:,} added, {summary.changed:,} changed, {summary.removed:,} removed, "
                 f"{summary.unchanged:,} unchanged")
    console.print(f"{summary.index}: {summary.vectors:,} vectors in collection {summary.collection!r} on "
                  f"{summary.uri} ({summary.index_type}, {summary.metric}); {what} ({summary.seconds:.1f} s)",
                  highlight=False, soft_wrap=True)
    tuning = summary.tuning
    if tuning.get("queries"):
        search = f" at {tuning['param']}={tuning['value']}" if tuning.get("param") else ""
        console.print(f"recall@10 {tuning['recall']:.3f}{search} on {tuning['queries']:,} catalog products "
                      f"(target {tuning['target_recall']:.2f}); p50 {tuning['p50_ms']:.2f} ms, "
                      f"p99 {tuning['p99_ms']:.2f} ms", highlight=False, soft_wrap=True)
    console.print(f"query it: fashionrec recommend {summary.index} --engine milvus"
                  + ("" if summary.metric == "euclidean" else f" --metric {summary.metric}"),
                  highlight=False, soft_wrap=True)

"""The ``milvus`` engine on the real catalog: push time, query latency, recall, filters, server memory.

Usage (figures and their history: benchmarks/RESULTS.md, summary in the README's "Scaling out"); also
``benchmarks/distributed.py --part milvus --index INDEX_DIR``, the issue's one entry point::

    .venv/bin/python benchmarks/distributed_milvus.py [--index INDEX_DIR] [--queries 200] \\
        [--workdir DIR] [--uri URI] [--limit N] [--faiss] [--json OUT.json]

``INDEX_DIR`` is an index of the whole real catalog (default
``/work/scratch/all-lite0``: ``fashionrec index ../shared/fashion-product-images-small
--out all-lite0 --backbone efficientnet_lite0``). It is only read: the
benchmark writes two copies into ``--workdir`` — the whole catalog (or its
first ``--limit`` products, for a quick run) and the women's footwear
(gender=Women, masterCategory=Footwear: the same vectors as
``fashionrec index ... --where gender=Women --where masterCategory=Footwear``
with that backbone gives) — and pushes each to FLAT and HNSW collections.

Without ``--uri`` it starts its own Milvus standalone servers (the embedded
one of the PyPI package ``milvus``, as the tests do: all interfaces, no
authentication, connected to over 127.0.0.1 only, stopped at the end): a fresh
one per measured collection, whose resident memory is read idle and with the
collection loaded, giving the memory per million vectors. With ``--uri`` it
uses that server and reports no memory.

What is measured, per index and engine (k = 10, the query product excluded by id):

* push: seconds for ``fashionrec milvus push`` (upsert, index build, load, tuning) and vectors/s;
* single queries (the engine's search for one product at a time): p50 / p99 ms, recall@10 against exact;
* filtered queries: p50 ms and recall@10 for filters keeping about 40 %, 15 % and 3 % of the products
  (the attribute values whose shares come closest);
* the done-when checks on women's footwear: for 50 sampled products the FLAT top-10 equals exact search's
  top-10 (ids and distances), and HNSW recall@10 >= 0.95.

``--faiss`` adds the in-process FAISS engines (ivf, hnsw) for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # milvus_server: the embedded server as the tests start it

K = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def copy_index(source, rows: np.ndarray | None, out: Path) -> Path:
    """A fresh index folder at ``out`` holding ``source``'s products ``rows`` (all when None)."""
    from fashionrec.index import write_index

    if out.exists():
        shutil.rmtree(out)
    vectors = np.asarray(source.embeddings if rows is None else source.embeddings[rows])
    products = source.products if rows is None else source.products.iloc[rows].reset_index(drop=True)
    manifest = {key: source.manifest[key] for key in ("backbone", "weights", "weights_path", "preprocessing",
                                                      "runtime", "precision", "catalog") if key in source.manifest}
    write_index(out, vectors, products, manifest)
    return out


def timed_queries(engine, vectors, ids, rows, where=None) -> tuple[np.ndarray, np.ndarray]:
    """Each query alone (k = 10, itself excluded): (found ids (Q, 10), milliseconds (Q,))."""
    found, times = [], []
    for row in rows:
        started = time.perf_counter()
        _, i = engine.search(vectors[row], K, filter=where, exclude_ids=[[int(ids[row])]])
        times.append((time.perf_counter() - started) * 1000)
        found.append(i[0])
    return np.array(found), np.array(times)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, int((t >= 0).sum()))
                          for f, t in zip(found, truth)]))


def pick_filters(products) -> dict[str, dict[str, str]]:
    """Per share wanted (40 %, 15 %, 3 %), the attribute value whose share of the products comes closest."""
    shares = {}
    for column in ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "usage"):
        if column in products.columns:
            for value, share in products[column].value_counts(normalize=True).items():
                shares[(column, value)] = float(share)
    picked = {}
    for target in (0.40, 0.15, 0.03):
        (column, value), share = min(shares.items(), key=lambda item: abs(item[1] - target))
        picked[f"{column}={value} ({share:.0%})"] = {column: value}
    return picked


def measure(label: str, index_dir: Path, uri: str | None, args, results: list, memory: dict) -> None:
    """Push ``index_dir`` to FLAT and HNSW collections and measure every engine on it.

    With ``uri`` None each collection goes to a fresh embedded server of its own, whose resident memory is
    read idle and with the collection loaded (Go keeps freed memory for a while: one collection per server
    is the only clean reading).
    """
    from fashionrec.index import IndexFolder
    from fashionrec.search import create_engine
    from fashionrec.search.milvus import MilvusEngine, push_index

    index = IndexFolder.load(index_dir)
    vectors, ids, products = np.asarray(index.embeddings), index.vector_ids, index.products
    n = len(ids)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(n, size=min(args.queries, n), replace=False))
    filters = pick_filters(products)
    exact = create_engine("exact").build(vectors, ids, products)
    truth, _ = timed_queries(exact, vectors, ids, rows)
    filtered_truth = {share: timed_queries(exact, vectors, ids, rows, where)[0] for share, where in filters.items()}
    candidates = [("exact", lambda: (exact, {}), None)]
    for kind in ("FLAT", "HNSW"):
        candidates.append((f"milvus {kind}", lambda kind=kind: push_and_open(kind), kind))
    if args.faiss:
        for name in ("ivf", "hnsw"):
            candidates.append((f"faiss {name}", lambda name=name: built_faiss(name), None))

    def push_and_open(kind):
        server = None
        where = uri
        if where is None:
            from milvus_server import start_server

            data = args.workdir / f"server-{label}-{kind}"
            shutil.rmtree(data, ignore_errors=True)  # a fresh server: nothing loaded but what is measured
            server = start_server(data)
            where = server.uri
        try:
            idle = settled_rss(server)
            started = time.perf_counter()
            summary = push_index(index_dir, uri=where, collection=f"bench_{label}_{kind.lower()}", index_type=kind,
                                 recreate=True)
            seconds = time.perf_counter() - started
            loaded = settled_rss(server)
            if server is not None:
                memory[(label, kind)] = (idle, loaded, n)
                log(f"{label} {kind}: server RSS {idle / 2**20:,.0f} MiB idle, {loaded / 2**20:,.0f} MiB with "
                    f"{n:,} vectors loaded")
            engine = MilvusEngine.load(index_dir / "engines" / "milvus" / "euclidean", vectors, ids, products)
            extra = {"push_s": round(seconds, 1), "vectors_per_s": round(n / seconds, 1),
                     "tuned": f"{summary.tuning['param']}={summary.tuning['value']}" if summary.tuning.get("param")
                     else "-"}
            return engine, extra, server
        except BaseException:
            if server is not None:
                server.stop()
            raise

    def built_faiss(name):
        started = time.perf_counter()
        return create_engine(name).build(vectors, ids, products), {"push_s": round(time.perf_counter() - started, 1)}

    for name, make, kind in candidates:
        made = make()
        engine, extra = made[0], made[1]
        server = made[2] if len(made) > 2 else None
        try:
            timed_queries(engine, vectors, ids, rows[:10])  # warm up
            found, ms = timed_queries(engine, vectors, ids, rows)
            row = {"index": label, "vectors": n, "engine": name, "p50_ms": round(float(np.percentile(ms, 50)), 2),
                   "p99_ms": round(float(np.percentile(ms, 99)), 2), "recall@10": round(recall(found, truth), 4),
                   **extra}
            for share, where in filters.items():
                f_found, f_ms = timed_queries(engine, vectors, ids, rows, where)
                found_recall = recall(f_found, filtered_truth[share])
                row[f"filter {share}"] = f"{np.percentile(f_ms, 50):.2f} ms, {found_recall:.3f}"
            results.append(row)
            log(json.dumps(row))
        finally:
            if server is not None:
                server.stop()


def settled_rss(server) -> int | None:
    """The server's resident memory once it has been quiet for a few seconds (None: not our server)."""
    if server is None:
        return None
    time.sleep(5)
    return server.rss_bytes()


def done_when_checks(index_dir: Path, uri: str, sample: int = 50) -> list[str]:
    """On women's footwear: FLAT top-10 == exact top-10 for ``sample`` products; HNSW recall@10 >= 0.95."""
    from fashionrec.recommend import Recommender
    from fashionrec.search.milvus import push_index

    lines = []
    exact = Recommender.load(index_dir)
    rng = np.random.default_rng(1)
    pids = exact.products["id"].to_numpy()[rng.choice(len(exact), size=min(sample, len(exact)), replace=False)]
    truth = {pid: exact.similar(pid, k=K) for pid in pids}
    for kind in ("FLAT", "HNSW"):
        push_index(index_dir, uri=uri, collection="bench_wf_check", index_type=kind, recreate=True)
        milvus = Recommender.load(index_dir, engine="milvus")
        assert milvus.engine("euclidean").name == "milvus"
        answers = {pid: milvus.similar(pid, k=K) for pid in pids}
        if kind == "FLAT":
            same = sum(answers[p]["id"].tolist() == truth[p]["id"].tolist()
                       and answers[p]["distance"].tolist() == truth[p]["distance"].tolist() for p in pids)
            lines.append(f"FLAT: top-10 (ids and distances) equal to exact for {same} of {len(pids)} products "
                         f"-> {'PASS' if same == len(pids) else 'FAIL'}")
        else:
            r = np.mean([len(set(answers[p]["id"]) & set(truth[p]["id"])) / K for p in pids])
            lines.append(f"HNSW: recall@10 {r:.3f} on {len(pids)} products -> {'PASS' if r >= 0.95 else 'FAIL'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/work/scratch/all-lite0"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fashionrec-bench-milvus"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--uri", help="an existing Milvus server (default: start the embedded one)")
    parser.add_argument("--limit", type=int, help="the whole-catalog run on its first N products only (a quick run)")
    parser.add_argument("--faiss", action="store_true", help="also the in-process FAISS engines")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    run(parser.parse_args())


def run(args: argparse.Namespace) -> dict:
    """The whole benchmark for parsed ``args`` (as :func:`main` parses them); returns what ``--json`` writes."""
    import logging

    from fashionrec.index import IndexFolder

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its failed requests reach us as MilvusErrors
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = IndexFolder.load(args.index)
    server = None
    uri = args.uri
    if uri is None:
        from milvus_server import start_server

        shutil.rmtree(args.workdir / "server", ignore_errors=True)
        server = start_server(args.workdir / "server")
        uri = server.uri
    try:
        products = source.products
        wf_rows = np.flatnonzero(((products["gender"] == "Women") & (products["masterCategory"] == "Footwear"))
                                 .fillna(False).to_numpy())
        wf = copy_index(source, wf_rows, args.workdir / "women-footwear")
        whole_rows = None if args.limit is None else np.arange(min(args.limit, len(products)))
        whole = copy_index(source, whole_rows, args.workdir / "whole")
        log(f"women's footwear: {len(wf_rows):,} products; whole: "
            f"{len(products) if whole_rows is None else len(whole_rows):,} products")
        checks = done_when_checks(wf, uri)
    finally:
        if server is not None:
            server.stop()
    results: list[dict] = []
    memory: dict = {}
    measure("whole", whole, args.uri, args, results, memory)
    measure("women_footwear", wf, args.uri, args, results, memory)
    print("\n".join(checks))
    for label in dict.fromkeys(row["index"] for row in results):
        rows = [row for row in results if row["index"] == label]
        names = ["index", "vectors", "engine", "push_s", "vectors_per_s", "tuned", "p50_ms", "p99_ms", "recall@10",
                 *(key for key in rows[0] if key.startswith("filter "))]
        print(" | ".join(names))
        for row in rows:
            print(" | ".join(str(row.get(c, "")) for c in names))
    for (label, kind), (idle, loaded, n) in memory.items():
        line = (f"server memory, {label} {kind} ({n:,} x {source.dim} float32 vectors, "
                f"{n * source.dim * 4 / 2**20:,.0f} MiB raw): {idle / 2**20:,.0f} MiB idle -> "
                f"{loaded / 2**20:,.0f} MiB loaded")
        if n >= 20_000:  # below, the server's fixed cost of a loaded collection swamps the vectors'
            line += (f" = {(loaded - idle) / n * 1e6 / 2**30:.2f} GiB per million vectors "
                     f"(raw: {source.dim * 4 * 1e6 / 2**30:.2f})")
        print(line)
    summary = {"rows": results, "checks": checks, "memory": {f"{k[0]} {k[1]}": list(v) for k, v in memory.items()}}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()

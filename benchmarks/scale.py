"""Search engines at catalog scale: exact, ivf and hnsw over 100k to 2M realistic feature vectors.

Usage (figures and their history: benchmarks/RESULTS.md, summary in the README)::

    .venv/bin/python benchmarks/scale.py --index INDEX_DIR [--sizes 100000 1000000] \\
        [--engines exact ivf hnsw] [--queries 200] [--workdir DIR] [--json OUT.json]

``INDEX_DIR`` is an index of the real catalog, e.g. the whole shared catalog:
``fashionrec index ../shared/fashion-product-images-small --out all-lite0 --backbone efficientnet_lite0``.

How the synthetic vectors are made, so that their neighbourhoods look like real ones:
every synthetic vector is a real catalog vector (drawn uniformly) plus a random
offset whose direction is drawn from the real vectors' own covariance (it moves
along the directions in which products really differ) and whose length is half
that real vector's distance to its nearest real neighbour (times a uniform
factor in [0.5, 1.5]). The real vectors are part of every set. The engines are
also measured on the real vectors alone, to compare.

What is measured, per size and engine:

* build: seconds to build (training, adding, tuning) in this process;
* disk: bytes of the engine's own files (the vectors file, shared by all engines, is reported apart);
* memory: peak resident memory (VmHWM) of a *fresh* query process that opens the
  vectors (memory-mapped) and the saved engine and answers every query below;
* single queries: p50 / p99 latency at k = 10, the query product excluded by id,
  and recall@10 against exact search;
* batch: queries per second when all queries are searched in one call;
* filtered: filters keeping 50 %, 10 % and 1 % of the products (a ``bucket``
  attribute), p50 latency and recall@10 against exact filtered search.

The first lines say which kernels ran: FAISS's SIMD level, the core its bundled
OpenBLAS uses and NumPy's, and a timed matrix product through each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

K = 10
FILTERS = {"50%": 50, "10%": 10, "1%": 1}  # bucket values 0..N-1 kept, out of 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- kernels


def kernel_lines() -> list[str]:
    """Which kernels run here, with a timed product through NumPy and through FAISS."""
    from fashionrec.search.faiss_setup import import_faiss, kernel_report

    faiss = import_faiss()
    report = kernel_report()
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50_000, 256), dtype=np.float32)
    queries = rng.standard_normal((256, 256), dtype=np.float32)
    flat = faiss.IndexFlatL2(256)
    flat.add(base)
    numpy_s = min(_timed(lambda: queries @ base.T) for _ in range(3))
    faiss_s = min(_timed(lambda: flat.search(queries, 10)) for _ in range(3))
    return [
        f"faiss {report['faiss_version']} ({report['faiss_simd']}); its BLAS: {report.get('faiss_blas')}"
        f"{' (core set by fashionrec)' if report.get('faiss_blas_core_set') else ''}; NumPy's BLAS: {report.get('numpy_blas')}",
        f"256 x 50,000 x 256 product: NumPy {numpy_s * 1000:.1f} ms; FAISS flat search (its BLAS + top-10) "
        f"{faiss_s * 1000:.1f} ms",
    ]


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- data


def nearest_distances(real: np.ndarray, workdir: Path) -> np.ndarray:
    """Each real vector's distance to its nearest other real vector (exact; cached in the work folder)."""
    cache = workdir / f"nn-{len(real)}.npy"
    if cache.is_file():
        return np.load(cache)
    from fashionrec.search import create_engine

    engine = create_engine("exact").build(real, np.arange(len(real)))
    out = np.empty(len(real))
    for start in range(0, len(real), 2048):
        rows = np.arange(start, min(start + 2048, len(real)))
        d, _ = engine.search(real[rows], 1, exclude_ids=[[int(r)] for r in rows])
        out[rows] = d[:, 0]
        log(f"  nearest-neighbour distances: {rows[-1] + 1:,}/{len(real):,}")
    np.save(cache, out)
    return out


def synthetic(real: np.ndarray, nn: np.ndarray, size: int, workdir: Path, seed: int = 0) -> Path:
    """A (size, D) float32 .npy of the real vectors followed by synthetic ones (see the module docstring)."""
    path = workdir / f"vectors-{size}.npy"
    if path.is_file():
        return path
    n0, d = real.shape
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0, dtype=np.float64)
    values, basis = np.linalg.eigh(np.cov((real - mean).T))
    shape = basis * np.sqrt(np.clip(values, 0, None))  # z @ shape.T has the real vectors' covariance
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(size, d))
    out[: min(n0, size)] = real[: min(n0, size)]
    for start in range(n0, size, 65536):
        m = min(65536, size - start)
        source = rng.integers(0, n0, m)
        offset = rng.standard_normal((m, d)) @ shape.T
        offset /= np.linalg.norm(offset, axis=1, keepdims=True)
        offset *= (0.5 * nn[source] * rng.uniform(0.5, 1.5, m))[:, None]
        out[start : start + m] = real[source] + offset
        log(f"  synthetic vectors: {start + m:,}/{size:,}")
    out.flush()
    del out
    os.replace(tmp, path)
    return path


def attributes(size: int, seed: int = 1) -> pd.DataFrame:
    """A ``bucket`` attribute (0..99, uniform) for the filters that keep 50 %, 10 % and 1 % of the products."""
    return pd.DataFrame({"bucket": np.random.default_rng(seed).integers(0, 100, size).astype(str)})


def bucket_filter(percent: int) -> dict:
    return {"bucket": [str(b) for b in range(percent)]}


# ----------------------------------------------------------------------------- one size


def measure_size(label: str, vectors_path: Path, engines: list[str], n_queries: int, workdir: Path,
                 engine_options: dict) -> list[dict]:
    from fashionrec.search import create_engine

    vectors = np.load(vectors_path, mmap_mode="r")
    n = len(vectors)
    ids = np.arange(n, dtype=np.int64)
    attrs = attributes(n)
    attrs_path = workdir / f"attributes-{n}.parquet"
    attrs.to_parquet(attrs_path)
    rows = np.sort(np.random.default_rng(7).choice(n, size=min(n_queries, n), replace=False))
    queries_path = workdir / f"queries-{n}.npy"
    np.save(queries_path, rows)

    log(f"[{label}] exact answers of {len(rows)} queries (unfiltered and 3 filters)")
    truth_path = workdir / f"truth-{n}.npz"
    if not truth_path.is_file():
        exact = create_engine("exact").build(vectors, ids, attrs)
        own = [[int(r)] for r in rows]
        truth = {"none": exact.search(vectors[rows], K, exclude_ids=own)[1]}
        for name, percent in FILTERS.items():
            truth[name] = exact.search(vectors[rows], K, filter=bucket_filter(percent), exclude_ids=own)[1]
        np.savez(truth_path, **truth)
        del exact

    results = []
    for engine_name in engines:
        folder = workdir / "engines" / f"{engine_name}-{n}"
        build_s = None
        if engine_name != "exact":
            log(f"[{label}] building {engine_name}")
            started = time.perf_counter()
            engine = create_engine(engine_name, **engine_options.get(engine_name, {})).build(vectors, ids, attrs)
            build_s = time.perf_counter() - started
            shutil.rmtree(folder, ignore_errors=True)
            engine.save(folder)
            tuning = engine.tuning
            del engine
            disk = sum(f.stat().st_size for f in Path(os.path.realpath(folder)).rglob("*") if f.is_file())
        else:
            tuning, disk = {}, 0
        log(f"[{label}] querying {engine_name} in a fresh process")
        worker = subprocess.run(
            [sys.executable, __file__, "--worker", str(vectors_path), str(attrs_path), str(queries_path),
             str(truth_path), engine_name, str(folder)],
            capture_output=True, text=True, check=False,
        )
        if worker.returncode != 0:
            raise SystemExit(f"query worker failed for {engine_name} at {label}:\n{worker.stderr}")
        measured = json.loads(worker.stdout.strip().splitlines()[-1])
        results.append({
            "size": label, "n": n, "engine": engine_name, "build_s": build_s, "engine_bytes": disk,
            "vectors_bytes": int(vectors.nbytes), "tuning": tuning, **measured,
        })
        log(f"[{label}] {engine_name}: {json.dumps(results[-1]['single'])}")
    return results


def worker(vectors_path: str, attrs_path: str, queries_path: str, truth_path: str, engine_name: str,
           folder: str) -> None:
    """The query process: open the vectors (memory-mapped) and the saved engine, answer, report (one JSON line)."""
    from fashionrec.search import create_engine, engine_class

    vectors = np.load(vectors_path, mmap_mode="r")
    ids = np.arange(len(vectors), dtype=np.int64)
    attrs = pd.read_parquet(attrs_path)
    rows = np.load(queries_path)
    truth = dict(np.load(truth_path))
    started = time.perf_counter()
    if engine_name == "exact":
        engine = create_engine("exact").build(vectors, ids, attrs)
    else:
        engine = engine_class(engine_name).load(folder, vectors, ids, attrs)
    open_s = time.perf_counter() - started
    queries = np.ascontiguousarray(vectors[rows])
    own = [[int(r)] for r in rows]

    def run(flt, key):
        for q in range(min(10, len(rows))):  # warm up
            engine.search(queries[q], K, filter=flt, exclude_ids=[own[q]])
        times, found = [], []
        for q in range(len(rows)):
            t = time.perf_counter()
            _, f = engine.search(queries[q], K, filter=flt, exclude_ids=[own[q]])
            times.append((time.perf_counter() - t) * 1000)
            found.append(f[0])
        recall = np.mean([len(set(t[t >= 0]) & set(f)) / max(1, int((t >= 0).sum())) for t, f in zip(truth[key], found)])
        return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p99_ms": round(float(np.percentile(times, 99)), 3),
                "recall": round(float(recall), 4)}

    single = run(None, "none")
    t = time.perf_counter()
    engine.search(queries, K, exclude_ids=own)
    batch_qps = len(rows) / (time.perf_counter() - t)
    filtered = {name: run(bucket_filter(percent), name) for name, percent in FILTERS.items()}
    status = {line.split(":")[0]: line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith(("VmHWM", "VmRSS"))}
    print(json.dumps({"open_s": round(open_s, 3), "single": single, "batch_qps": round(batch_qps, 1),
                      "filtered": filtered, "peak_rss_bytes": int(status["VmHWM"]) * 1024,
                      "rss_bytes": int(status["VmRSS"]) * 1024}))


# ----------------------------------------------------------------------------- report


def table(results: list[dict]) -> str:
    head = ("| vectors | engine | build | engine files | query process memory | p50 / p99 ms | batch q/s | recall@10 "
            "| 50 % filter: p50 ms, recall | 10 % | 1 % |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        f = r["filtered"]
        cells = [
            r["size"], r["engine"] + (f" ({r['tuning'].get('param')}={r['tuning'].get('value')})" if r["tuning"] else ""),
            "—" if r["build_s"] is None else f"{r['build_s']:.0f} s",
            "—" if not r["engine_bytes"] else f"{r['engine_bytes'] / 2**20:,.0f} MiB",
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB (vectors {r['vectors_bytes'] / 2**30:.2f} GiB)",
            f"{r['single']['p50_ms']:.2f} / {r['single']['p99_ms']:.2f}", f"{r['batch_qps']:,.0f}",
            f"{r['single']['recall']:.3f}",
        ] + [f"{f[name]['p50_ms']:.2f}, {f[name]['recall']:.3f}" for name in FILTERS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:8])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, type=Path, help="index folder of the real catalog")
    parser.add_argument("--sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--engines", nargs="*", default=["exact", "ivf", "hnsw"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path("scale-work"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--hnsw-m", type=int, default=None, help="M of the hnsw engine (default: the engine's)")
    parser.add_argument("--skip-real", action="store_true", help="do not measure the real vectors alone")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    options = {"hnsw": {"M": args.hnsw_m}} if args.hnsw_m else {}

    from fashionrec.index import IndexFolder

    for line in kernel_lines():
        print(line, flush=True)
    index = IndexFolder.load(args.index)
    real = np.ascontiguousarray(index.embeddings, dtype=np.float32)
    print(f"real vectors: {len(real):,} x {real.shape[1]} from {args.index} ({index.backbone})", flush=True)
    results = []
    if not args.skip_real:
        real_path = args.workdir / f"vectors-real-{len(real)}.npy"
        if not real_path.is_file():
            np.save(real_path, real)
        results += measure_size(f"{len(real):,} real", real_path, args.engines, args.queries, args.workdir, options)
    nn = nearest_distances(real, args.workdir)
    for size in args.sizes:
        path = synthetic(real, nn, size, args.workdir)
        results += measure_size(f"{size:,}", path, args.engines, args.queries, args.workdir, options)
        print(table(results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()

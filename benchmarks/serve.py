"""Web serving throughput: `fashionrec serve` against a bare FastAPI + NumPy endpoint, then a hostile soak.

Usage::

    python benchmarks/serve.py [--catalog ../shared/fashion-product-images-small]
        [--work /tmp/fashionrec-bench] [--duration 10] [--concurrency 1 16 64] [--soak 180]

For the women's-footwear and whole-catalog indexes of the real catalog (built
once with EfficientNet-Lite0 and reused, as ``benchmarks/query.py`` does), two
servers are started on 127.0.0.1, one after the other, with the same uvicorn
settings (uvloop, httptools, one worker, access log on):

* ``fashionrec serve INDEX`` — the real server; load on
  ``GET /api/products/{id}/similar?k=10``;
* a bare FastAPI app (this file, ``--bare-server``) answering
  ``GET /similar/{id}?k=10`` with one NumPy matrix-vector product and an
  ``argpartition`` over the same memory-mapped vectors — the bound for a Python
  web stack on this machine. Both limit BLAS to one thread per request
  (``fashionrec serve --blas-threads 1``, its default).

The load generator is ``wrk`` (Debian package ``wrk``) when installed, with a
Lua script that asks for random catalog ids; otherwise an asyncio + httpx
client. Each concurrency level runs ``--duration`` seconds after a short
warm-up; printed: requests/s, p50, p99, errors, and our/bare throughput.

The soak (``--soak`` seconds, women's-footwear index) mixes valid requests with
hostile ones — unknown ids, bad parameters, uploads over the cap, a
decompression-bomb PNG, private and unreachable URLs, non-image uploads — from
8 client threads, and reports the status counts (target: no 5xx) and the
server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUA = """
local ids = {}
local path_template = os.getenv("BENCH_PATH")
init = function(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", (path_template:gsub("{id}", id)))
end
"""


# --------------------------------------------------------------------------- the bare server


def bare_app(index_dir: str):
    """A minimal FastAPI app: exact top-k by one BLAS product over the index's vectors."""
    import numpy as np
    import pandas as pd
    from fastapi import FastAPI, HTTPException

    vectors = np.load(Path(index_dir) / "embeddings.npy", mmap_mode="r")
    vectors = np.asarray(vectors)
    ids = pd.read_parquet(Path(index_dir) / "products.parquet", columns=["id"])["id"].to_numpy(dtype=np.int64)
    row_of = {int(i): r for r, i in enumerate(ids)}
    sq = np.einsum("ij,ij->i", vectors, vectors)
    app = FastAPI()

    @app.get("/similar/{product_id}")
    def similar(product_id: int, k: int = 10):
        row = row_of.get(product_id)
        if row is None:
            raise HTTPException(404, "unknown id")
        q = vectors[row]
        d2 = sq - 2 * (vectors @ q) + float(q @ q)
        d2[row] = np.inf
        top = np.argpartition(d2, k)[:k]
        top = top[np.argsort(d2[top])]
        return {"query": {"id": product_id},
                "results": [{"id": int(ids[t]), "distance": float(np.sqrt(max(d2[t], 0.0)))} for t in top]}

    return app


def run_bare_server(index_dir: str, port: int) -> None:
    import numpy  # noqa: F401  (loaded first: threadpoolctl limits the libraries already loaded)
    import uvicorn
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # as `fashionrec serve` does by default
    uvicorn.run(bare_app(index_dir), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=True, log_level="info")


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server did not answer {url} within {timeout:.0f} s")


def start(cmd: list[str], ready_url: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_ready(ready_url, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), MB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --------------------------------------------------------------------------- load


def load_wrk(base: str, path: str, ids_file: Path, concurrency: int, duration: float) -> dict:
    script = Path(tempfile.mkdtemp()) / "ids.lua"
    script.write_text(LUA)
    env = {**os.environ, "BENCH_IDS": str(ids_file), "BENCH_PATH": path}
    threads = max(1, min(2, concurrency))
    cmd = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:.0f}s", "--latency",
           "--timeout", "10s", "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 60).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "errors": errors}


def load_httpx(base: str, path: str, ids: list[str], concurrency: int, duration: float) -> dict:
    import asyncio

    import httpx

    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient, stop_at: float) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            url = base + path.replace("{id}", random.choice(ids))
            started = time.perf_counter()
            try:
                r = await client.get(url)
                if r.status_code >= 400:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    async def main() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            started = time.monotonic()
            await asyncio.gather(*[worker(client, started + duration) for _ in range(concurrency)])
            return time.monotonic() - started

    elapsed = asyncio.run(main())
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")

    return {"rps": len(latencies) / elapsed, "p50": pct(0.50), "p99": pct(0.99), "errors": errors}


def measure(base: str, path: str, ids: list[str], ids_file: Path, concurrency: int, duration: float) -> dict:
    warm = min(3.0, duration / 3)
    if shutil.which("wrk"):
        load_wrk(base, path, ids_file, concurrency, warm)
        return load_wrk(base, path, ids_file, concurrency, duration)
    load_httpx(base, path, ids, concurrency, warm)
    return load_httpx(base, path, ids, concurrency, duration)


# --------------------------------------------------------------------------- soak


def bomb_png(side: int = 50_000) -> bytes:
    """A valid PNG header declaring side x side pixels, with a tiny compressed body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 65536, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def soak(base: str, ids: list[str], seconds: float, server_pid: int) -> dict:
    import httpx
    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (120, 160), (180, 40, 60)).save(photo, "JPEG")
    photo_bytes = photo.getvalue()
    huge = b"\xff" * (11 * 1024 * 1024)
    bomb = bomb_png()
    hostile = [
        ("GET", "/api/products/999999999/similar", None),                       # unknown id: 404
        ("GET", f"/api/products/{ids[0]}/similar?k=0", None),                    # bad k: 422
        ("GET", f"/api/products/{ids[0]}/similar?colour=Red", None),              # unknown attribute: 422
        ("GET", "/api/similar?url=http://127.0.0.1:1/x.jpg", None),              # private URL: 422
        ("GET", "/api/similar?url=http://169.254.169.254/latest/meta-data/", None),  # link-local: 422 (never fetched)
        ("GET", "/api/similar?url=ftp://example.org/x.jpg", None),               # not http(s): 422
        ("POST", "/api/similar", ("huge.jpg", huge)),                            # over the cap: 413
        ("POST", "/api/similar", ("bomb.png", bomb)),                            # 50,000 x 50,000 pixels: 413
        ("POST", "/api/similar", ("notes.txt", b"not a picture at all")),        # 415
        ("GET", "/images/..%2F..%2Fetc%2Fpasswd", None),                         # not an id: 404/422
    ]
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    before = rss_mb(server_pid)
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30.0) as http:
            while time.monotonic() < stop_at:
                roll = rng.random()
                try:
                    if roll < 0.6:
                        r = http.get(f"/api/products/{rng.choice(ids)}/similar", params={"k": rng.choice([5, 10, 20])})
                    elif roll < 0.65:
                        r = http.post("/api/similar", files={"image": ("photo.jpg", photo_bytes, "image/jpeg")})
                    else:
                        method, path, upload = rng.choice(hostile)
                        if upload is None:
                            r = http.request(method, path)
                        else:
                            r = http.post(path, files={"image": (upload[0], upload[1], "application/octet-stream")})
                    code = r.status_code
                except httpx.HTTPError:
                    code = -1  # connection dropped (e.g. the server refused a huge body early)
                with lock:
                    statuses[code] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    peak = before
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        peak = max(peak, rss_mb(server_pid))
    for t in threads:
        t.join()
    after = rss_mb(server_pid)
    return {"statuses": dict(sorted(statuses.items())), "rss_before": before, "rss_after": after, "rss_peak": peak}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "fashion-product-images-small"))
    parser.add_argument("--work", default="/tmp/fashionrec-bench")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--soak", type=float, default=180.0, help="seconds of the hostile soak (0: skip)")
    parser.add_argument("--indexes", nargs="+", default=["wf", "all"], choices=["wf", "all"])
    parser.add_argument("--bare-server", nargs=2, metavar=("INDEX_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server[0], int(args.bare_server[1]))
        return

    from fashionrec.catalog import ORIGINAL_SUBSET, load_catalog
    from fashionrec.embedding import ImageEmbedder, build_index

    catalog = load_catalog(args.catalog)
    embedder = ImageEmbedder(args.backbone)
    fashionrec = [str(Path(sys.executable).with_name("fashionrec"))]
    if not Path(fashionrec[0]).exists():
        fashionrec = [sys.executable, "-m", "fashionrec"]
    generator = "wrk" if shutil.which("wrk") else "asyncio + httpx"
    print(f"load generator: {generator}; {args.duration:.0f} s per level; server and client share "
          f"{os.cpu_count()} cores on 127.0.0.1")
    print(f"{'index':18} {'server':10} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  ours/bare")
    names = {"wf": ("women's footwear", ORIGINAL_SUBSET), "all": ("whole catalog", None)}
    soak_index = None
    for key in args.indexes:
        name, where = names[key]
        folder = Path(args.work) / f"query-{args.backbone}-{key}"
        build_index(catalog, folder, embedder=embedder, where=where)
        soak_index = soak_index or folder
        import pandas as pd

        ids = [str(i) for i in pd.read_parquet(folder / "products.parquet", columns=["id"])["id"]]
        ids_file = Path(tempfile.mkdtemp()) / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        results: dict[str, dict[int, dict]] = {}
        for server in ("fashionrec", "bare"):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            if server == "fashionrec":
                cmd = fashionrec + ["serve", str(folder), "--port", str(port)]
                path, ready = "/api/products/{id}/similar?k=10", f"{base}/healthz"
            else:
                cmd = [sys.executable, __file__, "--bare-server", str(folder), str(port)]
                path, ready = "/similar/{id}?k=10", f"{base}/similar/{ids[0]}"
            proc = start(cmd, ready)
            try:
                results[server] = {}
                for c in args.concurrency:
                    r = measure(base, path, ids, ids_file, c, args.duration)
                    results[server][c] = r
                    ratio = ""
                    if server == "bare":
                        ours = results["fashionrec"][c]["rps"]
                        ratio = f"{ours / r['rps']:.2f}x" if r["rps"] else ""
                    print(f"{name:18} {server:10} {c:4} {r['rps']:9.1f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:6}  {ratio}",
                          flush=True)
            finally:
                stop(proc)
    if args.soak > 0 and soak_index is not None:
        import pandas as pd

        ids = [str(i) for i in pd.read_parquet(soak_index / "products.parquet", columns=["id"])["id"]]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start(fashionrec + ["serve", str(soak_index), "--port", str(port)], f"{base}/healthz")
        try:
            import httpx
            from PIL import Image

            photo = io.BytesIO()
            Image.new("RGB", (120, 160), (30, 90, 160)).save(photo, "JPEG")
            for _ in range(20):  # warm up (the photo path loads the model) before the first memory reading
                httpx.get(f"{base}/api/products/{ids[0]}/similar", timeout=30)
                httpx.post(f"{base}/api/similar", files={"image": ("w.jpg", photo.getvalue(), "image/jpeg")},
                           timeout=60)
            result = soak(base, ids, args.soak, proc.pid)
        finally:
            stop(proc)
        total = sum(result["statuses"].values())
        server_errors = sum(n for code, n in result["statuses"].items() if code >= 500)
        print(f"soak: {args.soak:.0f} s, {total} requests, statuses {json.dumps(result['statuses'])}; "
              f"5xx: {server_errors}; server RSS {result['rss_before']:.0f} MB before, "
              f"{result['rss_peak']:.0f} MB peak, {result['rss_after']:.0f} MB after "
              f"({result['rss_after'] - result['rss_before']:+.0f} MB)")


if __name__ == "__main__":
    main()

"""The web app and its JSON API (FastAPI's TestClient and a real uvicorn on 127.0.0.1) over a generated catalog.

Every endpoint, every error status with its code, the security headers, the upload
cap while the body streams, the decompression bomb, CORS, the picture route, many
threads at once, and ``fashionrec serve`` itself. No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import io
import json
import logging
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from fashionrec.catalog import load_catalog
from fashionrec.datasets import make_sample_catalog
from fashionrec.recommend import Recommendations, Recommender
from fashionrec.web import WebSettings, app_from_env, create_app
from fashionrec.web.app import settings_to_env
from fashionrec.web.security import CSP

LINK = "http://127.0.0.1:9/pictures/{}.jpg"
"""Image links written to images.csv: never fetched (port 9 is discard), only redirected to."""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """A real efficientnet_lite0 index over the generated 24-product catalog (the one ``make_catalog`` writes).

    images.csv gives every product a link but one; after indexing, the picture files
    of two indexed products are removed: one is then served by its link, the other has none.
    """
    from fashionrec.embedding import ImageEmbedder, build_index

    root = tmp_path_factory.mktemp("web")
    catalog_dir = make_sample_catalog(root / "catalog", 24, 0, corrupt=1, missing=1)
    ids = pd.read_csv(catalog_dir / "styles.csv", usecols=["id"])["id"].tolist()
    no_link = ids[1]
    links = pd.DataFrame({"filename": [f"{i}.jpg" for i in ids if i != no_link],
                          "link": [LINK.format(i) for i in ids if i != no_link]})
    links.to_csv(catalog_dir / "images.csv", index=False)
    build_index(load_catalog(catalog_dir), root / "index", embedder=ImageEmbedder("efficientnet_lite0"))
    indexed = Recommender.load(root / "index").products["id"].tolist()
    assert no_link in indexed
    linked = next(i for i in indexed if i != no_link)
    for pid in (no_link, linked):
        (catalog_dir / "images" / f"{pid}.jpg").unlink()
    (root / "index" / "picture-cases.json").write_text(json.dumps({"linked": int(linked), "none": int(no_link)}))
    return root / "index"


@pytest.fixture(scope="module")
def rec(index_dir) -> Recommender:
    return Recommender.load(index_dir)


@pytest.fixture(scope="module")
def picture_cases(index_dir) -> dict[str, int]:
    return json.loads((index_dir / "picture-cases.json").read_text())


@pytest.fixture(scope="module")
def client(rec) -> TestClient:
    with TestClient(create_app(rec), raise_server_exceptions=False) as c:
        yield c


def make_client(rec, **settings) -> TestClient:
    return TestClient(create_app(rec, WebSettings(**settings)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def photo(rec, picture_cases) -> bytes:
    """A JPEG photo of a catalog product, re-framed (not byte-identical to the catalog file)."""
    pid = next(i for i in rec.products["id"] if int(i) not in picture_cases.values())
    image = Image.open(rec.image_source(pid)).convert("RGB").rotate(5, fillcolor="white")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels (2.5 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = (b"\x00" + b"\x00" * ((width + 7) // 8)) * 64  # the first 64 rows of a 1-bit grey picture
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def assert_error(response, status: int, code: str, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    for needle in needles:
        assert needle in body["error"]["message"], body
    return body


def ids_of(payload: dict) -> list:
    return [r["id"] for r in payload["results"]]


# --------------------------------------------------------------------------- a local picture server


class _Pictures(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/slow":
            time.sleep(3)
        status, ctype, body = self.routes.get(self.path, (404, "text/plain", b"not here"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def picture_server(photo):
    """An HTTP server on 127.0.0.1 serving a photo, a page, a bomb, a 404 and a slow answer."""
    _Pictures.routes = {
        "/photo.jpg": (200, "image/jpeg", photo),
        "/page.html": (200, "text/html", b"<html>not a picture</html>"),
        "/bomb.png": (200, "image/png", bomb_png()),
        "/slow": (200, "image/jpeg", photo),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pictures)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- a real uvicorn


@pytest.fixture(scope="module")
def live_server(rec):
    """The app on uvicorn (uvloop, httptools) in a thread, on a free port of 127.0.0.1."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(rec, WebSettings(max_upload_bytes=1024 * 1024)), loop="uvloop",
                            http="httptools", log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


# --------------------------------------------------------------------------- endpoints


def test_healthz(client, rec):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "products": len(rec)}


def test_products_pages_filters_text_and_facets(client, rec):
    products = rec.products
    page = client.get("/api/products", params={"per_page": 5, "page": 2}).json()
    assert page["total"] == len(products) and page["page"] == 2 and page["per_page"] == 5
    assert page["pages"] == -(-len(products) // 5)
    assert [p["id"] for p in page["products"]] == products["id"].iloc[5:10].tolist()  # index order
    assert client.get("/api/products").json()["per_page"] == 48  # the server's default

    gender = products["gender"].mode()[0]
    kinds = products.loc[products["gender"] == gender, "articleType"].value_counts().index[:2].tolist()
    response = client.get("/api/products", params=[("gender", gender), *[("articleType", k) for k in kinds]])
    assert response.status_code == 200
    body = response.json()
    expected = products[(products["gender"] == gender) & products["articleType"].isin(kinds)]
    assert body["total"] == len(expected)
    assert [p["id"] for p in body["products"]] == expected["id"].tolist()
    # Disjunctive facets: the gender counts ignore the gender filter itself.
    other = products[products["articleType"].isin(kinds)]["gender"].value_counts()
    assert body["facets"]["gender"] == {str(k): int(v) for k, v in other.items()}

    word = products["productDisplayName"].iloc[3].split()[-1]
    body = client.get("/api/products", params={"text": word.upper()}).json()
    matches = products[products["productDisplayName"].str.casefold().str.contains(word.casefold(), regex=False)]
    assert [p["id"] for p in body["products"]] == matches["id"].tolist()

    assert client.get("/api/products", params={"gender": ""}).json()["total"] == len(products)  # a form's "any"


def test_one_product(client, rec):
    pid = int(rec.products["id"].iloc[4])
    response = client.get(f"/api/products/{pid}")
    assert response.status_code == 200
    row = rec.query_product(pid)
    body = response.json()
    assert body["id"] == pid
    assert {k: body[k] for k in ("gender", "articleType", "productDisplayName", "image")} == {
        k: row[k] for k in ("gender", "articleType", "productDisplayName", "image")}
    assert_error(client.get("/api/products/999999999"), 404, "unknown_product", "999999999")


def test_similar_by_id_is_the_cli_json(client, rec, index_dir):
    """The API's answer is byte-for-byte the JSON model of `fashionrec recommend --json`."""
    from fashionrec.cli import app as cli

    pid = int(rec.products["id"].iloc[0])
    gender = rec.products["gender"].iloc[0]
    response = client.get(f"/api/products/{pid}/similar", params={"k": 4, "gender": gender, "metric": "cosine"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    result = CliRunner().invoke(cli, ["recommend", str(index_dir), "--id", str(pid), "-k", "4",
                                      "--where", f"gender={gender}", "--metric", "cosine", "--json"])
    assert result.exit_code == 0, result.output
    assert response.json() == json.loads(result.stdout)
    body = response.json()
    assert body["query"]["id"] == pid and len(body["results"]) == 4
    assert all(r["gender"] == gender for r in body["results"])
    assert pid not in ids_of(body)


def test_similar_with_any_of_two_values(client, rec):
    kinds = rec.products["articleType"].value_counts().index[:2].tolist()
    pid = int(rec.products["id"].iloc[2])
    response = client.get(f"/api/products/{pid}/similar?k=50&articleType={kinds[0]}&articleType={kinds[1]}")
    results = response.json()["results"]
    assert {r["articleType"] for r in results} == set(kinds)
    assert len(results) == rec.products["articleType"].isin(kinds).sum() - rec.products["articleType"].iloc[2:3].isin(kinds).sum()


def test_similar_to_an_upload(client, rec, photo):
    expected = Recommendations.from_frame(
        {"image": "shoe.jpg"}, rec.similar_to_image(Image.open(io.BytesIO(photo)), k=3)).to_dict()
    response = client.post("/api/similar?k=3", files={"image": ("C:\\Users\\me\\shoe.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == {"image": "shoe.jpg"}  # the name only, never the client's path
    assert ids_of(body) == ids_of(expected)
    np.testing.assert_allclose([r["distance"] for r in body["results"]],
                               [r["distance"] for r in expected["results"]], rtol=1e-5)

    raw = client.post("/api/similar?k=3", content=photo, headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 200 and raw.json()["query"] == {"image": "upload"}
    assert ids_of(raw.json()) == ids_of(expected)

    gender = rec.products["gender"].iloc[0]
    filtered = client.post(f"/api/similar?k=3&gender={gender}", content=photo,
                           headers={"Content-Type": "application/octet-stream"}).json()
    assert all(r["gender"] == gender for r in filtered["results"])


def test_similar_to_a_url(rec, photo, picture_server):
    url = f"{picture_server}/photo.jpg"
    # 127.0.0.1 is a loopback address: refused by default, before anything is fetched.
    with make_client(rec) as strict:
        body = assert_error(strict.get("/api/similar", params={"url": url}), 422, "url_not_allowed",
                            "non-public address 127.0.0.1", "expected a public host")
        assert "allow" not in body["error"]["message"]  # nothing a client could act on: no server option named
        assert_error(strict.get("/api/similar", params={"url": "file:///etc/passwd"}), 422, "url_not_allowed")
    with make_client(rec, allow_private_urls=True) as intranet:
        response = intranet.get("/api/similar", params={"url": url, "k": 3})
        assert response.status_code == 200, response.text
        assert response.json()["query"] == {"image": url}
        expected = rec.similar_to_image(Image.open(io.BytesIO(photo)), k=3)
        assert ids_of(response.json()) == expected["id"].tolist()
        # Never a file of the server, even when private hosts are allowed.
        local = next(rec.image_source(i) for i in rec.products["id"] if isinstance(rec.image_source(i), Path))
        for path in ("/etc/passwd", str(local)):
            assert_error(intranet.get("/api/similar", params={"url": path}), 422, "url_not_allowed")
        assert_error(intranet.get("/api/similar", params={"url": f"{picture_server}/nothing"}), 502, "fetch_failed", "404")
        assert_error(intranet.get("/api/similar", params={"url": f"{picture_server}/page.html"}), 415, "not_an_image")
        assert_error(intranet.get("/api/similar", params={"url": f"{picture_server}/bomb.png"}), 413, "too_large")
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there now
        assert_error(intranet.get("/api/similar", params={"url": f"http://127.0.0.1:{port}/x.jpg"}), 502, "fetch_failed")
        assert_error(intranet.get("/api/similar"), 422, "invalid_parameter", "url")


def test_url_timeout_is_504(rec, picture_server, monkeypatch):
    from fashionrec import images
    from fashionrec.web import api

    monkeypatch.setattr(api, "open_image", functools.partial(images.open_image, timeout=(1.0, 0.3), total_timeout=2))
    with make_client(rec, allow_private_urls=True) as intranet:
        assert_error(intranet.get("/api/similar", params={"url": f"{picture_server}/slow"}), 504, "fetch_timeout")


def test_index_info(client, rec):
    response = client.get("/api/index")
    assert response.status_code == 200
    info = response.json()
    assert info["backbone"] == "efficientnet_lite0"
    assert info["count"] == len(rec) and info["dim"] == rec.index.dim


def _about_rows(html: str) -> dict[str, list[str]]:
    """The rows of the about page's "Search engines" table: first cell -> the other cells, as text."""
    section = html[html.index("<h2>Search engines</h2>"):html.index("<h2>Evaluation</h2>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", section, flags=re.S)[1:]:  # the first is the header
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def test_about_page_and_index_json_list_the_saved_engines(index_dir, tmp_path):
    """An index folder with an ivf engine for euclidean: the about page shows it answering, with its measured
    recall and latency, and the exact engine answering cosine; /api/index lists it as the manifest does."""
    import shutil

    from fashionrec.index import IndexFolder
    from fashionrec.search import build_saved_engine

    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy, symlinks=True)
    saved = build_saved_engine(IndexFolder.load(copy), "ivf", metric="euclidean", target_recall=0.9)
    entry = json.loads((copy / "manifest.json").read_text())["engines"][0]
    with TestClient(create_app(Recommender.load(copy, engine="ivf"))) as c:
        info = c.get("/api/index").json()
        page = c.get("/about")
    assert info["engine"] == "ivf" and info["answering"] == {"euclidean": "ivf", "cosine": "exact"}
    [listed] = info["engines"]
    assert {key: listed[key] for key in entry} == entry  # every figure the manifest records
    assert listed["recall_queries"] == saved.description["tuning"]["queries"]
    assert page.status_code == 200
    rows = _about_rows(page.text)
    assert rows["ivf (answering)"] == [
        "euclidean", f"nprobe = {entry['search_value']}",
        f"{entry['recall_at_10']:.3f} on {listed['recall_queries']} held-out products", "0.90",
        f"{entry['p50_ms']:.2f}", f"{entry['build_seconds']:.1f} s",
    ]
    assert "ivf for euclidean; exact for cosine (ivf is not built for it)" in page.text


def test_about_page_without_engines(client, rec):
    page = client.get("/about")
    assert page.status_code == 200
    assert "No approximate engine is saved in this index folder" in page.text
    info = client.get("/api/index").json()
    assert info["engines"] == [] and info["answering"] == {"euclidean": "exact", "cosine": "exact"}
    assert info["skipped"] == len(rec.index.manifest.get("skipped", [])) > 0  # the corrupt and the missing image


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("k=0", "at least 1"),
        ("k=abc", "k"),
        ("k=101", "at most 100"),
        ("metric=manhattan", "manhattan"),
        ("colour=Red", "'colour'"),
        ("text=shoes", "'text'"),
    ],
)
def test_bad_parameters_are_422(client, rec, query, needle):
    pid = int(rec.products["id"].iloc[0])
    assert_error(client.get(f"/api/products/{pid}/similar?{query}"), 422, "invalid_parameter", needle)


def test_bad_listing_parameters_are_422(client):
    assert_error(client.get("/api/products?page=0"), 422, "invalid_parameter", "page")
    assert_error(client.get("/api/products?per_page=201"), 422, "invalid_parameter", "per_page")
    assert_error(client.get("/api/products?k=3"), 422, "invalid_parameter", "'k'")
    assert_error(client.get("/api/products?shoeSize=9"), 422, "invalid_parameter", "'shoeSize'", "articleType")


def test_unknown_ids_routes_and_methods(client):
    assert_error(client.get("/api/products/999999999/similar"), 404, "unknown_product", "999999999")
    assert_error(client.get("/api/nothing-here"), 404, "not_found", "/api/nothing-here")
    assert_error(client.delete("/api/products"), 405, "method_not_allowed")
    # Outside the API an error is the pages' HTML page, with the same status.
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_uploads_that_are_not_pictures(client, rec):
    assert_error(client.post("/api/similar", content=b"hello", headers={"Content-Type": "text/plain"}),
                 415, "not_an_image", "text/plain")
    assert_error(client.post("/api/similar", content=b"not a picture at all", headers={"Content-Type": "image/png"}),
                 415, "not_an_image")
    assert_error(client.post("/api/similar", files={"image": ("x.png", b"GIF89a garbage", "image/png")}),
                 415, "not_an_image", "x.png")
    assert_error(client.post("/api/similar", files={"photo": ("x.jpg", b"\xff\xd8", "image/jpeg")}),
                 422, "invalid_parameter", "'image'")
    assert_error(client.post("/api/similar?k=0", content=b"", headers={"Content-Type": "image/png"}),
                 422, "invalid_parameter", "k")


def test_unexpected_errors_are_500_without_internals(rec, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail of the server")

    with make_client(rec) as c:
        monkeypatch.setattr(c.app.state.recommender, "info", broken)
        with caplog.at_level(logging.ERROR, logger="fashionrec.web"):
            response = c.get("/api/index")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert response.headers["content-security-policy"] == CSP and response.headers["x-content-type-options"] == "nosniff"
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records), body


# --------------------------------------------------------------------------- uploads: caps


def test_upload_cap_is_exact(rec, photo):
    with make_client(rec, max_upload_bytes=len(photo)) as fits:
        assert fits.post("/api/similar", files={"image": ("p.jpg", photo, "image/jpeg")}).status_code == 200
        assert fits.post("/api/similar", content=photo, headers={"Content-Type": "image/jpeg"}).status_code == 200
    with make_client(rec, max_upload_bytes=len(photo) - 1) as short:
        response = short.post("/api/similar", files={"image": ("p.jpg", photo, "image/jpeg")})
        assert_error(response, 413, "too_large", str(len(photo) - 1))
        assert response.headers["connection"] == "close"
        assert_error(short.post("/api/similar", content=photo, headers={"Content-Type": "image/jpeg"}), 413, "too_large")


def _streamed(app, body_chunks, headers):
    """POST through httpx's ASGI transport, which hands the body to the app one chunk at a time; returns
    (response, chunks consumed)."""
    consumed = 0

    async def body():
        nonlocal consumed
        for chunk in body_chunks:
            consumed += 1
            yield chunk

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.post("/api/similar", content=body(), headers=headers)

    return asyncio.run(run()), consumed


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_upload_stops_being_read_past_the_cap(rec, multipart):
    """A 1 GiB upload in 64 KiB chunks with a 1 MiB cap: refused after about 1 MiB was read, not 1 GiB."""
    cap, size = 1024 * 1024, 64 * 1024
    total_chunks = 16 * 1024  # 1 GiB if it were all read

    def chunks():
        if multipart:
            yield (b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="huge.jpg"\r\n'
                   b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(total_chunks):
            yield b"\xff" * size

    headers = {"Content-Type": "multipart/form-data; boundary=XyZ" if multipart else "image/jpeg"}
    app = create_app(rec, WebSettings(max_upload_bytes=cap))
    response, consumed = _streamed(app, chunks(), headers)
    assert_error(response, 413, "too_large")
    assert consumed <= cap // size + 3, consumed  # the cap, one chunk past it, and the form's header

    # A declared Content-Length over the cap is refused before reading anything.
    response, consumed = _streamed(app, chunks(), {**headers, "Content-Length": str(total_chunks * size)})
    assert_error(response, 413, "too_large", "Content-Length")
    assert consumed == 0


def test_the_real_server_stops_reading_and_closes(live_server):
    """Over a real socket: uvicorn answers 413 and closes the connection; the client cannot push 256 MiB."""
    host, port = live_server.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    sent = 0
    failed = threading.Event()

    def push():
        nonlocal sent
        chunk = b"4000\r\n" + b"\0" * 0x4000 + b"\r\n"
        try:
            sock.sendall(b"POST /api/similar HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            while sent < 256 * 1024 * 1024:
                sock.sendall(chunk)
                sent += 0x4000
        except OSError:
            failed.set()

    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    reply = b""
    while b"\r\n\r\n" not in reply:
        data = sock.recv(65536)
        assert data, reply
        reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"connection: close" in reply.lower()
    sender.join(30)
    assert failed.is_set() and sent < 64 * 1024 * 1024, sent
    sock.close()


def test_decompression_bomb_is_413_and_memory_stays_flat(client):
    bomb = bomb_png()
    assert len(bomb) < 4096 and struct.unpack(">II", bomb[16:24]) == (50_000, 50_000)  # IHDR: width, height
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        response = client.post("/api/similar", files={"image": ("bomb.png", bomb, "image/png")})
        raw = client.post("/api/similar", content=bomb, headers={"Content-Type": "image/png"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_error(response, 413, "too_large", "bomb.png")
    assert_error(raw, 413, "too_large")
    assert peak < 16 * 1024 * 1024, peak  # decoded it would be 2.5 GB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_rss < 64 * 1024


# --------------------------------------------------------------------------- pictures by id


def test_pictures_by_id_only(client, rec, picture_cases):
    pid = next(int(i) for i in rec.products["id"] if int(i) not in picture_cases.values())
    response = client.get(f"/images/{pid}")
    assert response.status_code == 200
    assert response.content == Path(rec.image_source(pid)).read_bytes()
    assert response.headers["content-type"] == "image/jpeg"

    linked = client.get(f"/images/{picture_cases['linked']}", follow_redirects=False)
    assert linked.status_code == 302 and linked.headers["location"] == LINK.format(picture_cases["linked"])
    assert_error(client.get(f"/images/{picture_cases['none']}"), 404, "no_picture")
    assert_error(client.get("/images/999999999"), 404, "unknown_product")
    for path in ("/images/..%2F..%2F..%2Fetc%2Fpasswd", "/images/%2Fetc%2Fpasswd", "/images/images%2F" + str(pid) + ".jpg"):
        response = client.get(path)
        assert response.status_code == 404 and b"root:" not in response.content, path


# --------------------------------------------------------------------------- headers and CORS


def test_security_headers_on_every_response(client, rec):
    pid = int(rec.products["id"].iloc[0])
    for path in ("/healthz", f"/api/products/{pid}/similar", "/api/products/0", "/api/nowhere", f"/images/{pid}",
                 "/openapi.json", "/static/style.css", "/static/missing.css"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert response.headers["content-security-policy"] == CSP, path
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    docs = client.get("/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp and "frame-ancestors 'none'" in csp
    for script in re.findall(r'<script src="([^"]+)"', docs.text):
        assert script.startswith("https://cdn.jsdelivr.net/"), script


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/products", "/api/products/{product_id}", "/api/products/{product_id}/similar",
                 "/api/similar", "/api/index", "/healthz", "/images/{product_id}"):
        assert path in paths, path
    similar = paths["/api/products/{product_id}/similar"]["get"]
    assert {p["name"] for p in similar["parameters"]} >= {"product_id", "k", "metric", "filters"}
    assert "multipart/form-data" in paths["/api/similar"]["post"]["requestBody"]["content"]


def test_no_cors_unless_an_origin_is_given(client, rec):
    origin = {"Origin": "https://shop.example"}
    response = client.get("/healthz", headers=origin)
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    preflight = {**origin, "Access-Control-Request-Method": "GET"}
    assert "access-control-allow-origin" not in client.options("/api/products", headers=preflight).headers

    with make_client(rec, cors_origins=("https://shop.example",)) as shop:
        assert shop.get("/healthz", headers=origin).headers["access-control-allow-origin"] == "https://shop.example"
        answer = shop.options("/api/products", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://shop.example"
        other = shop.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------------- many threads


def test_sixteen_threads_give_the_same_answers_as_one(live_server, rec, photo):
    ids = [int(i) for i in rec.products["id"]]
    gender = rec.products["gender"].iloc[0]

    def call(n: int, http: httpx.Client):
        if n % 4 == 0:
            r = http.post(f"{live_server}/api/similar?k=4", files={"image": (f"p{n}.jpg", photo, "image/jpeg")})
        elif n % 4 == 1:
            r = http.get(f"{live_server}/api/products", params={"gender": gender, "per_page": 7, "page": 1 + n % 2})
        else:
            r = http.get(f"{live_server}/api/products/{ids[n % len(ids)]}/similar",
                         params={"k": 5, "metric": ("euclidean", "cosine")[n % 2], **({"gender": gender} if n % 3 else {})})
        assert r.status_code == 200, r.text
        return r.json()

    with httpx.Client(timeout=60) as http:
        expected = [call(n, http) for n in range(64)]
    local = threading.local()

    def threaded(n: int):
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=60)
        return call(n, local.http)

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(threaded, range(64)))
    for n, (a, b) in enumerate(zip(got, expected)):
        if "results" in a:
            assert ids_of(a) == ids_of(b) and a["query"] == b["query"], n
            np.testing.assert_allclose([r["distance"] for r in a["results"]],
                                       [r["distance"] for r in b["results"]], rtol=1e-5)
        else:
            assert a == b, n


# --------------------------------------------------------------------------- the serve command


def test_app_from_env(index_dir, monkeypatch, photo):
    settings = WebSettings(max_upload_bytes=1000, cors_origins=("https://a.example", "https://b.example"))
    for name, value in settings_to_env(index_dir, settings).items():
        monkeypatch.setenv(name, value)
    app = app_from_env()
    assert app.state.settings == settings
    with TestClient(app) as c:
        assert_error(c.post("/api/similar", content=photo, headers={"Content-Type": "image/jpeg"}), 413, "too_large")
        assert c.get("/healthz", headers={"Origin": "https://b.example"}).headers["access-control-allow-origin"]


def test_app_from_env_opens_the_engine_named(index_dir, monkeypatch):
    from fashionrec.web.app import ENV_ENGINE

    env = settings_to_env(index_dir, WebSettings(), engine="ivf")
    assert env[ENV_ENGINE] == "ivf"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = app_from_env()
    assert app.state.recommender.engine_name == "ivf"
    monkeypatch.setenv(ENV_ENGINE, "annoy")
    with pytest.raises(ValueError, match="unknown search engine 'annoy'"):
        app_from_env()


def test_serve_refuses_a_missing_index_in_one_line(tmp_path):
    from fashionrec.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "no-such-index")])
    assert result.exit_code == 1
    text = result.output
    assert "Traceback" not in text and "no-such-index" in text
    assert len([line for line in text.strip().splitlines() if line.strip()]) <= 2  # one line, maybe wrapped


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_logs_each_request_and_stops_on_ctrl_c(index_dir, workers):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fashionrec", "serve", str(index_dir), "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        info = httpx.get(f"{base}/api/index", timeout=10)
        assert info.status_code == 200 and "server" not in info.headers
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert len(re.findall(r'"GET /api/index HTTP/1.1" 200', output)) == 1, output
    assert "server stopped" in output and "Traceback" not in output, output


def test_concurrent_similar_requests_are_batched_with_the_same_answers(rec, monkeypatch):
    """Requests waiting together are answered by one recommendations_many call, each as if alone."""
    import asyncio

    from fashionrec.errors import UnknownProductError
    from fashionrec.web.batching import SimilarBatcher

    calls: list[int] = []
    original = rec.recommendations_many

    def counting(ids, *args, **kwargs):
        calls.append(len(ids))
        return original(ids, *args, **kwargs)

    monkeypatch.setattr(rec, "recommendations_many", counting)
    batcher = SimilarBatcher(rec, max_batch=8)
    ids = [int(i) for i in rec.products["id"]][:20]

    async def ask_all():
        return await asyncio.gather(*[batcher.recommendations(i, 5, None, "euclidean") for i in ids])

    answers = asyncio.run(ask_all())
    assert [a.to_dict() for a in answers] == [rec.recommendations(i, k=5).to_dict() for i in ids]
    assert max(calls) > 1 and max(calls) <= 8 and sum(calls) == len(ids)  # batched, never over max_batch

    async def with_an_unknown_id():
        return await asyncio.gather(batcher.recommendations(ids[0], 5, None, "euclidean"),
                                    batcher.recommendations(424242, 5, None, "euclidean"), return_exceptions=True)

    good, bad = asyncio.run(with_an_unknown_id())
    assert good.to_dict() == rec.recommendations(ids[0], k=5).to_dict()
    assert isinstance(bad, UnknownProductError)

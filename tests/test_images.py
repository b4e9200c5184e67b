"""open_image from files, PIL images and a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.errors import QueryError
from fashionrec.images import is_url, open_image


def png_bytes(size=(6, 4), colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = png_bytes()
BIG = png_bytes((400, 400), (1, 2, 3)) + b"\0" * 5000  # a valid image over a small cap


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status=200, ctype="image/png", body=b"", length=True, headers=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body) if length is True else length))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path
        if path == "/good.png":
            self._send(body=GOOD)
        elif path == "/good-charset":
            self._send(ctype="image/png; charset=binary", body=GOOD)
        elif path == "/slow-headers":
            time.sleep(1.5)
            self._send(body=GOOD)
        elif path == "/slow-body":
            self._send(body=b"", length=len(GOOD))
            self.wfile.flush()
            time.sleep(1.5)
            self.wfile.write(GOOD)
        elif path == "/page":
            self._send(ctype="text/html", body=b"<html>not a picture</html>")
        elif path == "/no-type":
            self._send(ctype=None, body=GOOD)
        elif path == "/octet":
            self._send(ctype="application/octet-stream", body=GOOD)
        elif path == "/octet-garbage":
            self._send(ctype="application/octet-stream", body=b"%PDF-1.4 not a picture")
        elif path == "/big-declared":
            self._send(body=GOOD, length=10**9)
        elif path == "/big-chunked":
            self._send(body=BIG, length=False)  # HTTP/1.0: body ends when the connection closes
        elif path == "/garbage.png":
            self._send(body=b"this is not a png at all")
        elif path == "/loop":
            self._send(status=302, ctype=None, headers=[("Location", "/loop")], length=0)
        elif path == "/once":
            self._send(status=301, ctype=None, headers=[("Location", "/good.png")], length=0)
        elif path == "/boom":
            self._send(status=500, ctype="text/plain", body=b"oops")
        else:
            self._send(status=404, ctype="text/plain", body=b"missing")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hang up early on purpose
        pass


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def test_is_url():
    assert is_url("http://x.org/a.jpg") and is_url("HTTPS://x.org/a.jpg")
    assert not is_url("ftp://x.org/a.jpg") and not is_url("images/1.jpg") and not is_url(Path("a"))
    assert not is_url("http://")


def test_local_file_and_pil(tmp_path):
    path = tmp_path / "a.png"
    Image.new("L", (5, 3), 77).save(path)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (5, 3)
    assert open_image(str(path)).getpixel((0, 0)) == (77, 77, 77)
    rgba = Image.new("RGBA", (2, 2), (1, 2, 3, 4))
    assert open_image(rgba).mode == "RGB" and rgba.mode == "RGBA"


def test_local_errors(tmp_path):
    with pytest.raises(QueryError, match="not found"):
        open_image(tmp_path / "nope.jpg")
    with pytest.raises(QueryError, match="not a file"):
        open_image(tmp_path)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(QueryError, match="cannot decode"):
        open_image(bad)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png_bytes((50, 50))[:60])
    with pytest.raises(QueryError, match="cannot decode"):
        open_image(truncated)
    with pytest.raises(QueryError, match="expected a file path"):
        open_image(42)


def test_url_good(server):
    image = open_image(server + "/good.png")
    assert image.size == (6, 4) and image.getpixel((0, 0)) == (10, 120, 200)
    assert open_image(server + "/good-charset").size == (6, 4)
    assert open_image(server + "/once").size == (6, 4)  # one redirect is fine
    # Generic or missing content types are decoded and judged by their bytes.
    assert open_image(server + "/octet").size == (6, 4)
    assert open_image(server + "/no-type").size == (6, 4)


@pytest.mark.parametrize(
    "path, message",
    [
        ("/page", r"not an image: content type 'text/html', expected image/\*"),
        ("/octet-garbage", "cannot decode"),
        ("/garbage.png", "cannot decode"),
        ("/loop", "too many redirects"),
        ("/nothing-here.png", "HTTP 404"),
        ("/boom", "HTTP 500"),
    ],
)
def test_url_errors(server, path, message):
    with pytest.raises(QueryError, match=message):
        open_image(server + path)


def test_url_too_large(server):
    with pytest.raises(QueryError, match="too large: Content-Length 1000000000 bytes"):
        open_image(server + "/big-declared", max_bytes=1000)
    with pytest.raises(QueryError, match="too large: more than 1000 bytes"):
        open_image(server + "/big-chunked", max_bytes=1000)
    assert open_image(server + "/big-chunked").size == (400, 400)  # under the default cap


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
def test_url_timeout(server, path):
    started = time.monotonic()
    with pytest.raises(QueryError, match="timed out"):
        open_image(server + path, timeout=(1.0, 0.3))
    assert time.monotonic() - started < 1.4


def test_connection_refused():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(QueryError, match=f"cannot fetch http://127.0.0.1:{port}/a.png"):
        open_image(f"http://127.0.0.1:{port}/a.png", timeout=(1, 1))


def test_session_is_used(server):
    import requests

    with requests.Session() as session:
        session.max_redirects = 0
        with pytest.raises(QueryError, match="too many redirects"):
            open_image(server + "/once", session=session)


def test_transparent_photo_is_queried_on_white_like_the_index_sees_it(tmp_path):
    """A cut-out product photo (transparent background) must look as it does when indexed:
    on white, the catalog's background, not on the black of a plain RGB conversion."""
    import numpy as np

    from fashionrec.models import get_backbone, preprocess
    from fashionrec.embedding import load_image_array

    photo = Image.new("RGBA", (60, 80), (0, 0, 0, 0))
    photo.paste((200, 30, 40, 255), (20, 25, 40, 55))  # an opaque red product
    path = tmp_path / "cutout.png"
    photo.save(path)
    for source in (path, str(path), photo):
        opened = open_image(source)
        pixels = np.asarray(opened)
        assert opened.mode == "RGB"
        assert (pixels[:10, :10] == 255).all() and tuple(pixels[40, 30]) == (200, 30, 40)
    assert photo.mode == "RGBA"  # the caller's image is left as it was
    settings = get_backbone("efficientnet_lite0").preprocessing
    queried = preprocess(open_image(path), settings)
    indexed = load_image_array(path, settings)
    np.testing.assert_array_equal(queried, indexed)

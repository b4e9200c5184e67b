"""open_image and decode_image from files, bytes, PIL images and a local HTTP server on 127.0.0.1.

No test sends traffic anywhere but 127.0.0.1: hosts that must look public are
made so by patching the resolver and the address check, never by contacting one.
"""

from __future__ import annotations

import io
import resource
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from fashionrec import images
from fashionrec.errors import (
    ImageError,
    ImageFetchError,
    ImageFetchTimeoutError,
    ImageTooLargeError,
    NotAnImageError,
    QueryError,
    URLNotAllowedError,
)
from fashionrec.images import DEFAULT_MAX_PIXELS, PrivateHostError, decode_image, is_url, open_image


def png_bytes(size=(6, 4), colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 1-bit pixels, a few hundred bytes long."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8192, 9)) + chunk(b"IEND", b"")


GOOD = png_bytes()
BIG = png_bytes((400, 400), (1, 2, 3)) + b"\0" * 5000  # a valid image over a small cap
BOMB = png_declaring(50_000, 50_000)  # 2.5 billion pixels declared


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

    def _trickle(self, data: bytes, pause: float = 0.3):
        for i in range(len(data)):
            time.sleep(pause)
            try:
                self.wfile.write(data[i : i + 1])
            except OSError:  # the client hung up: what the tests want
                return

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path
        SEEN.append(path)
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
        elif path == "/bomb.png":
            self._send(body=BOMB)
        elif path == "/to-private":  # a redirect to another loopback address (private; never contacted)
            port = self.server.server_address[1]
            self._send(status=302, ctype=None, headers=[("Location", f"http://127.0.0.2:{port}/good.png")], length=0)
        elif path == "/to-ftp":
            self._send(status=302, ctype=None, headers=[("Location", "ftp://127.0.0.1/good.png")], length=0)
        elif path == "/trickle-body":  # a declared body sent one byte every 0.3 s
            self._send(body=b"", length=len(GOOD))
            self._trickle(GOOD)
        elif path == "/trickle-unsized":  # the same with no length: only the connection closing ends it
            self._send(body=b"", length=False)
            self._trickle(GOOD)
        elif path == "/trickle-headers":  # the status line, then the headers one byte every 0.3 s
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._trickle(b"X-Slow: " + b"a" * 200 + b"\r\n\r\n")
        elif path == "/silent":  # accepts the request, then says nothing
            time.sleep(5)
        elif path == "/boom":
            self._send(status=500, ctype="text/plain", body=b"oops")
        else:
            self._send(status=404, ctype="text/plain", body=b"missing")


SEEN: list[str] = []
"""Paths the test server was asked for, in order."""


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
    image = open_image(server + "/good.png", allow_private_urls=True)
    assert image.size == (6, 4) and image.getpixel((0, 0)) == (10, 120, 200)
    assert open_image(server + "/good-charset", allow_private_urls=True).size == (6, 4)
    assert open_image(server + "/once", allow_private_urls=True).size == (6, 4)  # one redirect is fine
    # Generic or missing content types are decoded and judged by their bytes.
    assert open_image(server + "/octet", allow_private_urls=True).size == (6, 4)
    assert open_image(server + "/no-type", allow_private_urls=True).size == (6, 4)


@pytest.mark.parametrize(
    "path, error, message",
    [
        ("/page", NotAnImageError, r"not an image: content type 'text/html', expected image/\*"),
        ("/octet-garbage", NotAnImageError, "cannot decode"),
        ("/garbage.png", NotAnImageError, "cannot decode"),
        ("/loop", ImageFetchError, "too many redirects"),
        ("/nothing-here.png", ImageFetchError, "HTTP 404"),
        ("/boom", ImageFetchError, "HTTP 500"),
        ("/to-ftp", URLNotAllowedError, "'ftp://127.0.0.1/good.png' refused: expected an http:// or https:// URL"),
    ],
)
def test_url_errors(server, path, error, message):
    with pytest.raises(error, match=message):
        open_image(server + path, allow_private_urls=True)


def test_url_too_large(server):
    with pytest.raises(ImageTooLargeError, match="too large: Content-Length 1000000000 bytes"):
        open_image(server + "/big-declared", allow_private_urls=True, max_bytes=1000)
    with pytest.raises(ImageTooLargeError, match="too large: more than 1000 bytes"):
        open_image(server + "/big-chunked", allow_private_urls=True, max_bytes=1000)
    assert open_image(server + "/big-chunked", allow_private_urls=True).size == (400, 400)  # under the default cap


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
def test_url_timeout(server, path):
    started = time.monotonic()
    with pytest.raises(ImageFetchTimeoutError, match="timed out"):
        open_image(server + path, allow_private_urls=True, timeout=(1.0, 0.3))
    assert time.monotonic() - started < 1.4


def test_url_overall_deadline(server):
    """A server that answers within each read timeout but too slowly overall is cut off at the deadline."""
    started = time.monotonic()
    with pytest.raises(ImageFetchTimeoutError, match="download took over 0.5 s"):
        open_image(server + "/slow-body", allow_private_urls=True, timeout=(1.0, 3.0), total_timeout=0.5)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-unsized", "/trickle-headers", "/silent"])
def test_overall_deadline_holds_whatever_the_server_does(server, path):
    """A server trickling one byte every 0.3 s never trips the read timeout, yet the call ends at the deadline."""
    started = time.monotonic()
    with pytest.raises(ImageFetchTimeoutError, match=rf"timed out fetching {server}{path}: download took over 1.5 s"):
        open_image(server + path, allow_private_urls=True, timeout=(1.0, 3.0), total_timeout=1.5)
    assert time.monotonic() - started < 1.5 + 0.8


def test_overall_deadline_holds_with_a_callers_session_too(server):
    import requests

    started = time.monotonic()
    with requests.Session() as session, pytest.raises(ImageFetchTimeoutError, match="download took over 1.5 s"):
        open_image(server + "/trickle-body", allow_private_urls=True, session=session, timeout=(1.0, 3.0), total_timeout=1.5)
    assert time.monotonic() - started < 1.5 + 0.8


def test_overall_deadline_holds_for_public_only_fetches(server, fake_public_shop):
    port = server.rsplit(":", 1)[1]
    started = time.monotonic()
    with pytest.raises(ImageFetchTimeoutError, match="download took over 1.5 s"):
        open_image(f"http://shop.test:{port}/trickle-headers", allow_private_urls=False, timeout=(1.0, 3.0), total_timeout=1.5)
    assert time.monotonic() - started < 1.5 + 0.8


def test_connection_refused():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ImageFetchError, match=f"cannot fetch http://127.0.0.1:{port}/a.png"):
        open_image(f"http://127.0.0.1:{port}/a.png", allow_private_urls=True, timeout=(1, 1))


def test_session_is_used(server):
    import requests

    with requests.Session() as session:
        session.max_redirects = 0
        with pytest.raises(QueryError, match="too many redirects"):
            open_image(server + "/once", allow_private_urls=True, session=session)


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


# ---------------------------------------------------------------- decode_image and the pixel cap


def test_decode_image_from_bytes():
    image = decode_image(GOOD)
    assert image.mode == "RGB" and image.size == (6, 4) and image.getpixel((5, 3)) == (10, 120, 200)
    assert decode_image(bytearray(GOOD)).size == (6, 4)
    with pytest.raises(NotAnImageError, match="cannot decode photo.jpg: not a picture format"):
        decode_image(b"%PDF-1.4 not a picture", what="photo.jpg")
    with pytest.raises(NotAnImageError, match="cannot decode the uploaded file"):
        decode_image(png_bytes((50, 50))[:60])  # truncated
    with pytest.raises(NotAnImageError, match="the uploaded file is empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="got str, expected bytes"):
        decode_image("not bytes")


def test_pixel_cap_is_checked_from_the_header():
    with pytest.raises(ImageTooLargeError, match=r"upload is too large: 6 x 4 = 24 pixels, expected at most 23"):
        decode_image(GOOD, what="upload", max_pixels=23)
    assert decode_image(GOOD, max_pixels=24).size == (6, 4)
    over_default = png_declaring(8000, 8000)  # 64 Mpx: under Pillow's own guard, over ours
    with pytest.raises(ImageTooLargeError, match=f"8000 x 8000 = 64,000,000 pixels, expected at most {DEFAULT_MAX_PIXELS:,}"):
        decode_image(over_default)
    with pytest.raises(NotAnImageError):  # no cap of ours: Pillow reads on and finds the data cut short
        decode_image(over_default, max_pixels=None)


def test_bomb_png_is_refused_without_decoding_it():
    """A 50,000 x 50,000 PNG of a few hundred bytes: refused from its header, in no time and no memory."""
    assert len(BOMB) < 2000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    for max_pixels in (DEFAULT_MAX_PIXELS, None):  # Pillow's own guard (at open) or ours (from the header)
        with pytest.raises(ImageTooLargeError, match=r"the uploaded file is too large.*2,?500,?000,?000 pixels"):
            decode_image(BOMB, max_pixels=max_pixels)
    assert time.monotonic() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # decoding would take 2.5 GB


def test_pixel_cap_applies_to_files_and_urls(server, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(BOMB)
    with pytest.raises(ImageTooLargeError, match=f"image file {path} is too large"):
        open_image(path)
    with pytest.raises(ImageTooLargeError, match=f"image at {server}/bomb.png is too large"):
        open_image(server + "/bomb.png", allow_private_urls=True)
    with pytest.raises(ImageTooLargeError, match="24 pixels, expected at most 10"):
        open_image(server + "/good.png", allow_private_urls=True, max_pixels=10)


# ---------------------------------------------------------------- which URLs may be fetched


def test_private_urls_are_refused_before_any_request(server):
    SEEN.clear()
    port = server.rsplit(":", 1)[1]
    for url in (server + "/good.png", f"http://localhost:{port}/good.png", f"http://[::1]:{port}/good.png",
                f"http://2130706433:{port}/good.png"):  # 127.0.0.1 written as a number
        with pytest.raises(URLNotAllowedError, match="resolves to non-public address"):
            open_image(url, allow_private_urls=False)
    with pytest.raises(PrivateHostError, match="pass allow_private_urls=True .* for intranet hosts") as caught:
        open_image(server + "/good.png")  # the default, for every caller
    assert caught.value.host == "127.0.0.1" and caught.value.addresses == ["127.0.0.1"]
    assert "\n" not in str(caught.value)
    assert SEEN == []  # refused before connecting
    assert open_image(server + "/good.png", allow_private_urls=True).size == (6, 4)  # an intranet catalog
    assert SEEN == ["/good.png"]


def test_not_http_or_local_paths_are_refused(tmp_path):
    with pytest.raises(URLNotAllowedError, match="unsupported image URL 'ftp://x.org/a.png'"):
        open_image("ftp://x.org/a.png")
    path = tmp_path / "a.png"
    path.write_bytes(GOOD)
    assert open_image(path).size == (6, 4)
    assert open_image(path, allow_private_urls=False).size == (6, 4)  # the URL policy says nothing about files
    for source in (path, str(path)):
        with pytest.raises(URLNotAllowedError, match="local file .* refused: expected an http:// or https:// URL"):
            open_image(source, allow_files=False)  # a server's caller: its paths are files of the server


@pytest.fixture
def fake_public_shop(monkeypatch):
    """``shop.test`` resolves to 127.0.0.1, and 127.0.0.1 alone counts as public: the local server plays a public shop."""
    real_resolve, real_allowed = images._resolve, images._address_allowed
    monkeypatch.setattr(images, "_resolve", lambda host, port: ["127.0.0.1"] if host == "shop.test" else real_resolve(host, port))
    monkeypatch.setattr(images, "_address_allowed", lambda address: address == "127.0.0.1" or real_allowed(address))


def test_public_host_redirecting_to_a_private_one_is_refused(server, fake_public_shop):
    port = server.rsplit(":", 1)[1]
    SEEN.clear()
    picture = open_image(f"http://shop.test:{port}/once", allow_private_urls=False)  # a public redirect is followed
    assert picture.size == (6, 4) and SEEN == ["/once", "/good.png"]
    SEEN.clear()
    with pytest.raises(URLNotAllowedError, match=f"http://127.0.0.2:{port}/good.png refused: host '127.0.0.2'"):
        open_image(f"http://shop.test:{port}/to-private", allow_private_urls=False)
    assert SEEN == ["/to-private"]  # the private hop was never requested
    with pytest.raises(PrivateHostError, match="host '127.0.0.2'"):
        open_image(f"http://shop.test:{port}/to-private")  # the default policy, at the redirect hop too
    with pytest.raises(URLNotAllowedError, match="ftp://"):
        open_image(f"http://shop.test:{port}/to-ftp", allow_private_urls=False)
    with pytest.raises(ImageFetchError, match="refused") as caught:  # allowed: followed, and nobody listens there
        open_image(f"http://127.0.0.1:{port}/to-private", allow_private_urls=True)
    assert not isinstance(caught.value, URLNotAllowedError)


def test_a_name_that_re_resolves_to_a_private_address_is_not_connected_to(server, monkeypatch):
    """DNS rebinding: the name is public when checked, private when the connection resolves it again."""
    real_allowed = images._address_allowed
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    monkeypatch.setattr(images, "_resolve", lambda host, port: next(answers))
    monkeypatch.setattr(images, "_address_allowed", lambda address: address == "127.0.0.1" or real_allowed(address))
    SEEN.clear()
    with pytest.raises(URLNotAllowedError, match="non-public address 127.0.0.2"):
        open_image(f"http://rebind.test:{server.rsplit(':', 1)[1]}/good.png", allow_private_urls=False)
    assert SEEN == []


@pytest.mark.parametrize(
    "addresses",
    [["10.1.2.3"], ["172.16.0.1"], ["192.168.1.1"], ["127.0.0.1"], ["169.254.169.254"], ["0.0.0.0"],
     ["100.64.0.1"], ["224.0.0.1"], ["240.0.0.1"], ["255.255.255.255"], ["::1"], ["::"], ["fe80::1"], ["fc00::1"],
     ["ff02::1"], ["::ffff:127.0.0.1"], ["::ffff:10.0.0.1"], ["2002:7f00:1::1"], ["64:ff9b::a9fe:a9fe"],
     ["8.8.8.8", "10.0.0.1"]],  # every address must be public
)
def test_non_public_addresses_are_refused(monkeypatch, addresses):
    monkeypatch.setattr(images, "_resolve", lambda host, port: addresses)
    with pytest.raises(URLNotAllowedError, match="non-public address"):
        open_image("http://somewhere.test/a.png", allow_private_urls=False)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_connected_to_as_checked(monkeypatch, address, scheme):
    """A public address passes the check, and the connection goes to that very address
    (the socket layer is stubbed to fail, so nothing is sent)."""
    import urllib3.util.connection

    tried = []

    def no_connection(address_port, *args, **kwargs):
        tried.append(address_port)
        raise OSError("stubbed: no connection in tests")

    monkeypatch.setattr(images, "_resolve", lambda host, port: [address])
    monkeypatch.setattr(urllib3.util.connection, "create_connection", no_connection)
    with pytest.raises(ImageFetchError, match="stubbed: no connection in tests") as caught:
        open_image(f"{scheme}://shop.test:8080/a.png", allow_private_urls=False, timeout=(1, 1))
    assert not isinstance(caught.value, URLNotAllowedError)
    assert tried == [(address, 8080)]


def test_unresolvable_or_slow_names(monkeypatch):
    import socket

    def no_such_host(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(images, "_resolve", no_such_host)
    with pytest.raises(ImageFetchError, match="cannot fetch image URL http://nowhere.test/a.png: host 'nowhere.test' does not resolve"):
        open_image("http://nowhere.test/a.png", allow_private_urls=False)
    monkeypatch.setattr(images, "_resolve", lambda host, port: time.sleep(2) or ["127.0.0.1"])
    started = time.monotonic()
    with pytest.raises(ImageFetchTimeoutError, match="timed out resolving host 'slow.test'"):
        open_image("http://slow.test/a.png", allow_private_urls=False, timeout=(0.2, 1))
    assert time.monotonic() - started < 1.0

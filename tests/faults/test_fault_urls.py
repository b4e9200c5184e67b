"""Hostile image URLs, end to end through ``fashionrec recommend INDEX --image URL`` (issue 10).

A local server on 127.0.0.1 plays each hostile host: it trickles headers or a
body a byte at a time, sends an endless body, declares a huge length, serves a
decompression bomb or an HTML page, redirects in a loop or to the cloud
metadata address. Each case must end with a non-zero exit and one line of
error naming the URL and the cause, within a bounded time and memory.

127.0.0.1 is a loopback address, refused by default: the cases run with
``--allow-private-urls`` (an intranet host), except the redirect to a private
address, where the first host is made to look public by patching the resolver
and the address check (nothing but 127.0.0.1 is ever contacted).
"""

from __future__ import annotations

import resource
import signal
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from fashionrec import images
from fashionrec.cli import app
from fashionrec.datasets import make_sample_catalog
from fashionrec.images import DEFAULT_MAX_BYTES

from tiny_backbone import register

register()
runner = CliRunner()

DEADLINE = 2.0
"""--url-timeout of the trickling cases, in seconds."""
BOUND = 10.0
"""Seconds any case may take before it counts as hanging (each ends in well under that)."""
MAX_GROWTH_KIB = 200 * 1024
"""Most the process's peak memory may grow during one case: a few times the 20 MiB download cap."""
METADATA = "169.254.169.254"


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` 1-bit pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8192, 9)) + chunk(b"IEND", b"")


BOMB = png_declaring(50_000, 50_000)  # 2.5 billion pixels: 2.5 GB and more once decoded


class Hostile(BaseHTTPRequestHandler):
    """One hostile behaviour per path; HTTP/1.0, so an unsized body ends only when the server closes."""

    sent: dict[str, int] = {}
    """Body bytes written per path (the endless body)."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def _headers(self, status=200, ctype="image/png", length=None, location=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.flush()

    def _trickle(self, data: bytes, pause: float = 0.5):
        for i in range(len(data)):
            time.sleep(pause)
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client hung up: what the tests want
                return

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path
        if path == "/trickle-headers.png":  # the status line, then the headers one byte every 0.5 s
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            self.wfile.flush()
            self._trickle(b"Content-Type: image/png\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n")
        elif path == "/trickle-body.png":  # a sized body, one byte every 0.5 s
            self._headers(length=len(BOMB))
            self._trickle(BOMB)
        elif path == "/endless.png":  # no length, and bytes for ever
            self._headers()
            block = b"\0" * 65536
            self.sent[path] = 0
            try:
                while True:
                    self.wfile.write(block)
                    self.sent[path] += len(block)
            except OSError:
                return
        elif path == "/huge.png":  # a terabyte declared; nothing sent until the client has hung up
            self._headers(length=10**12)
            self.connection.settimeout(BOUND)
            try:
                self.rfile.read(1)  # returns at the client's hang-up (or the bound)
            except OSError:
                pass
        elif path == "/bomb.png":
            self._headers(length=len(BOMB))
            self.wfile.write(BOMB)
        elif path == "/to-metadata":
            self._headers(302, ctype=None, length=0, location=f"http://{METADATA}/latest/meta-data")
        elif path == "/loop":
            self._headers(302, ctype=None, length=0, location="/loop")
        elif path == "/page.png":  # an HTML page under a picture's name
            body = b"<!doctype html><html><body>Sign in to see this picture</body></html>"
            self._headers(ctype="text/html; charset=utf-8", length=len(body))
            self.wfile.write(body)
        else:
            self._headers(404, ctype="text/plain", length=0)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hang up early on purpose
        pass


@pytest.fixture(scope="module")
def port():
    httpd = QuietServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    """A tiny index (8 drawn products, the tiny-test backbone)."""
    catalog = make_sample_catalog(tmp_path_factory.mktemp("catalog") / "catalog", 8, 0, corrupt=0, missing=0)
    out = tmp_path_factory.mktemp("index") / "idx"
    result = runner.invoke(app, ["index", str(catalog), "--out", str(out), "--backbone", "tiny-test",
                                 "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


class Hung(BaseException):
    """Raised by the alarm in a case that outlived its bound (a BaseException: no handler turns it into an error line)."""


@pytest.fixture
def hang_guard():
    """Ends a case that hangs: SIGALRM raises :class:`Hung` in the main thread at 3 x BOUND."""

    def alarm(signum, frame):
        raise Hung(f"still running after {3 * BOUND} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 3 * BOUND)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def recommend_url(index_dir, url: str, *options: str):
    """Run ``fashionrec recommend INDEX --image URL``; returns (result, seconds, peak memory growth in KiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    result = runner.invoke(app, ["recommend", str(index_dir), "--image", url, "--json", *options],
                           catch_exceptions=False)
    elapsed = time.monotonic() - started
    return result, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def assert_one_line_error(result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    assert result.stdout == "", result.stdout  # no results printed
    text = result.stderr
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("path", ["/trickle-headers.png", "/trickle-body.png"])
def test_trickling_server_is_cut_off_at_the_overall_deadline(index_dir, port, hang_guard, path):
    """One byte every 0.5 s never trips the 10 s read timeout; the overall deadline still holds."""
    url = f"http://127.0.0.1:{port}{path}"
    result, elapsed, _ = recommend_url(index_dir, url, "--allow-private-urls", "--url-timeout", str(DEADLINE))
    assert_one_line_error(result, f"timed out fetching {url}", f"download took over {DEADLINE} s")
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + 3, elapsed


def test_endless_body_is_cut_at_the_size_cap(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/endless.png"
    result, elapsed, growth = recommend_url(index_dir, url, "--allow-private-urls")
    assert_one_line_error(result, f"image at {url} is too large", f"more than {DEFAULT_MAX_BYTES} bytes (20 MiB)")
    assert elapsed < BOUND and growth < MAX_GROWTH_KIB, (elapsed, growth)
    assert Hostile.sent["/endless.png"] > DEFAULT_MAX_BYTES / 2  # the server did stream: the client cut it


def test_huge_declared_length_is_refused_before_the_body(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/huge.png"
    result, elapsed, growth = recommend_url(index_dir, url, "--allow-private-urls", "--url-timeout", str(DEADLINE))
    # Refused from the header: reading the body (none is sent) would end at the deadline instead.
    assert_one_line_error(result, f"image at {url} is too large", "Content-Length 1000000000000 bytes")
    assert elapsed < DEADLINE and growth < MAX_GROWTH_KIB, (elapsed, growth)


def test_decompression_bomb_is_refused_from_its_header(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/bomb.png"
    result, elapsed, growth = recommend_url(index_dir, url, "--allow-private-urls")
    line = assert_one_line_error(result, f"image at {url} is too large")
    # From the header: fashionrec's pixel cap, or Pillow's own guard for a picture this far over it.
    assert "50000 x 50000 = 2,500,000,000 pixels" in line or "Image size (2500000000 pixels)" in line, line
    assert elapsed < BOUND and growth < MAX_GROWTH_KIB, (elapsed, growth)  # decoding would take 2.5 GB


def test_redirect_to_the_metadata_address_is_refused_unconnected(index_dir, port, hang_guard, monkeypatch):
    """``shop.test`` plays a public shop (it resolves to 127.0.0.1, which alone counts as public here)
    and redirects to 169.254.169.254: refused by default at that hop, never connected to."""
    real_resolve, real_allowed = images._resolve, images._address_allowed
    monkeypatch.setattr(images, "_resolve", lambda host, p: ["127.0.0.1"] if host == "shop.test" else real_resolve(host, p))
    monkeypatch.setattr(images, "_address_allowed", lambda address: address == "127.0.0.1" or real_allowed(address))
    connected = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        connected.append(address[0])
        if not str(address[0]).startswith("127."):  # nothing but the local server, whatever the code does
            raise OSError(f"test: connection to {address[0]} blocked")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    url = f"http://shop.test:{port}/to-metadata"
    result, elapsed, _ = recommend_url(index_dir, url)
    assert_one_line_error(result, f"image URL {url} redirected to http://{METADATA}/latest/meta-data refused",
                          f"non-public address {METADATA}", "pass --allow-private-urls for intranet hosts")
    assert connected == ["127.0.0.1"]  # the shop only; the metadata address never
    assert elapsed < BOUND, elapsed


def test_redirect_loop_names_the_limit(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/loop"
    result, elapsed, _ = recommend_url(index_dir, url, "--allow-private-urls")
    assert_one_line_error(result, f"too many redirects fetching {url}", "more than 5")
    assert elapsed < BOUND, elapsed


def test_html_page_is_not_an_image(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/page.png"
    result, elapsed, _ = recommend_url(index_dir, url, "--allow-private-urls")
    assert_one_line_error(result, f"{url} is not an image", "content type 'text/html'")
    assert elapsed < BOUND, elapsed


def test_loopback_url_is_refused_by_default_and_names_the_option(index_dir, port, hang_guard):
    url = f"http://127.0.0.1:{port}/bomb.png"
    result, elapsed, _ = recommend_url(index_dir, url)
    assert_one_line_error(result, f"image URL {url} refused", "pass --allow-private-urls for intranet hosts")
    assert elapsed < BOUND, elapsed

"""A real Milvus server for the tests: the standalone server binary shipped in the PyPI package ``milvus``.

The package (2.3.5, "embedded Milvus", the ``milvus`` extra's test dependency)
holds a Milvus standalone binary and its libraries, compressed. The first start
unpacks them (about 450 MB) into a folder shared by every test run of this
user, ``$TMPDIR/fashionrec-milvus-<uid>/`` (outside the tests' isolated HOME,
so later runs skip the unpacking); each server gets a fresh data folder of its
own.

**The server listens on all network interfaces with authentication off**
(that is how the package configures it). Tests connect to it over 127.0.0.1
only, and it lives only as long as the process that started it: it is stopped
at the end of the session, and killed by the kernel if that process dies first
(the package's own ``MilvusServer`` outlives a killed parent). Every port it
opens is chosen free at start (the embedded etcd's peer port too, which the
package leaves fixed at 2380), so two servers — two test sessions, or a test
session and a benchmark — never collide.

``FASHIONREC_MILVUS_URI`` set in the environment: the tests use that server
instead of starting one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

URI_ENV = "FASHIONREC_MILVUS_URI"


class ServerUnavailable(RuntimeError):
    """The embedded server cannot run here (package missing, start failed); the message says why."""


QUICKER = {"assignmentExpiration": 200, "checkInterval": 200, "distPullInterval": 100, "checkHandoffInterval": 1000,
           "timeTickInterval": 50}
"""Server settings shortened for tests (ms): how long a segment stays open to writes after a flush seals it
(2000), how often the query coordinator checks loads and handoffs (1000, 500, 5000), and the proxy's time tick
(200: what a strongly consistent read waits for). Collections then flush and load in about a second instead of
two or three; what a search answers does not change."""
QUICKER_QUERY_COORD = {"checkChannelInterval": 100, "checkSegmentInterval": 200, "checkIndexInterval": 500}
"""Query coordinator intervals the package's template leaves out (ms; defaults 1000, 3000, 10000)."""


def shared_folder() -> Path:
    """Where the server binary is unpacked once for every run of this user."""
    return Path(tempfile.gettempdir()) / f"fashionrec-milvus-{os.getuid()}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MilvusTestServer:
    """A running server: ``uri`` to connect to, its process, and its data folder."""

    uri: str
    base_dir: Path
    process: subprocess.Popen | None = None  # when this session started the server
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (None for a server this session did not start)."""
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        """Stop the server this session started: SIGTERM, then SIGKILL after a second (as the package's stop
        does; its data survives either)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _unpack_binary() -> Path:
    """The unpacked server binary's folder (unpacked on first use, under a lock: sessions may start together)."""
    import milvus

    root = shared_folder()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        milvus._initialize_data_files(str(root))  # skips files whose checksum file matches the package's
    return root / "bin"


def _template_with_etcd_ports(base: Path, peer_port: int, client_port: int) -> Path:
    """The package's config template, with the embedded etcd configured by a file of our own.

    The package sets etcd's client port but not its peer port (2380 for every
    server): a second server on the machine would fail to start.
    """
    import milvus

    template = (Path(milvus.__file__).parent / "data" / "config.yaml.template").read_text(encoding="utf-8")
    etcd_config = base / "embed-etcd.yaml"
    etcd_config.write_text(
        f"name: default\n"
        f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-cluster: default=http://127.0.0.1:{peer_port}\n"
        f"listen-client-urls: http://127.0.0.1:{client_port}\n"
        f"advertise-client-urls: http://127.0.0.1:{client_port}\n",
        encoding="utf-8",
    )
    marker = "etcd:\n"
    if marker not in template:
        raise ServerUnavailable("the milvus package's config template has no etcd section; cannot choose its ports")
    template = template.replace(marker, f"{marker}  config:\n    path: {etcd_config}\n", 1)
    for setting, quicker in QUICKER.items():  # the same answers, sooner (see QUICKER)
        template = re.sub(rf"^(\s*{setting}:)\s*\d+", rf"\g<1> {quicker}", template, count=1, flags=re.MULTILINE)
    added = "".join(f"  {setting}: {value}\n" for setting, value in QUICKER_QUERY_COORD.items())
    template = template.replace("\nqueryCoord:\n", f"\nqueryCoord:\n{added}", 1)
    out = base / "config.yaml.template"
    out.write_text(template, encoding="utf-8")
    return out


def start_server(base_dir: str | os.PathLike, *, timeout: float = 120.0) -> MilvusTestServer:
    """Start a Milvus standalone server with its data in ``base_dir`` (a fresh folder); returns once it answers.

    Raises :class:`ServerUnavailable` when the ``milvus`` package is missing or
    the server does not come up within ``timeout`` seconds (its log's last
    lines are in the message).
    """
    try:
        import milvus
    except ImportError:
        raise ServerUnavailable("the PyPI package 'milvus' (embedded Milvus server) is not installed: "
                                "pip install 'fashionrec[milvus]'") from None
    base = Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    binary = _unpack_binary()
    if not (base / "bin").exists():
        (base / "bin").symlink_to(binary, target_is_directory=True)
    keys = ("proxy_port", "proxy_internal_port", "etcd_port", "root_coord_port", "query_coord_port",
            "query_node_port", "index_coord_port", "index_node_port", "data_coord_port", "data_node_port")
    ports = {key: _free_port() for key in (*keys, "etcd_peer_port", "http_port")}
    config = milvus.MilvusServerConfig(template=str(_template_with_etcd_ports(base, ports["etcd_peer_port"],
                                                                             ports["etcd_port"])),
                                       data_dir=str(base), **{key: ports[key] for key in keys})
    # The package looks for its glog file beside the template it was given.
    config.glog_conf_file = str(Path(milvus.__file__).parent / "data" / "glog.conf")
    config.resolve()  # checks the ports are free and writes base/configs/milvus.yaml
    # Started as the package's MilvusServer.start does, but set to be killed when the process that started it
    # ends, however it ends: the package's server outlives a test run that is killed.
    environment = {**os.environ, "DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(ports["http_port"]),
                   "MILVUS_RUN_DIR": str(base / "run"),
                   "LD_LIBRARY_PATH": ":".join(filter(None, [str(binary), os.environ.get("LD_LIBRARY_PATH")]))}
    (base / "logs").mkdir(exist_ok=True)
    command = [sys.executable, "-c", _DIE_WITH_PARENT, str(base / "bin" / "milvus"), "run", "standalone"]
    with open(base / "logs" / "milvus-stdout.log", "ab") as out, open(base / "logs" / "milvus-stderr.log", "ab") as err:
        process = subprocess.Popen(command, cwd=base, env=environment, stdout=out, stderr=err, start_new_session=True)
    handle = MilvusTestServer(f"http://127.0.0.1:{ports['proxy_port']}", base, process, ports)
    try:
        _wait_healthy(process, ports["http_port"], time.monotonic() + timeout, base)
    except BaseException:
        handle.stop()
        raise
    return handle


_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL); "  # 1 = PR_SET_PDEATHSIG
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""Run as ``python -c`` before the server: asks the kernel to SIGKILL it when its parent (the process that
started it) ends, then becomes the server (the setting survives ``exec``). Not a ``preexec_fn``: forking a
process that runs gRPC (pymilvus) and then running Python in the child aborts the child."""


def _wait_healthy(process: subprocess.Popen, http_port: int, deadline: float, base: Path) -> None:
    """Wait for the server's health check, failing at once if its process ends."""
    url = f"http://127.0.0.1:{http_port}/healthz"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ServerUnavailable(f"the Milvus server exited with status {code} while starting: {_log_tail(base)}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:
                if b"OK" in answer.read():
                    return
        time.sleep(0.2)
    raise ServerUnavailable(f"the Milvus server did not answer its health check within the time allowed: "
                            f"{_log_tail(base)}")


def _log_tail(base: Path) -> str:
    lines = []
    for name in ("milvus-stdout.log", "milvus-stderr.log"):
        with contextlib.suppress(OSError):
            lines += [line for line in (base / "logs" / name).read_text(errors="replace").splitlines()
                      if "ERROR" in line or "panic" in line.lower()][-3:]
    return " | ".join(line[:300] for line in lines) or f"no error in its logs ({base / 'logs'})"


def server_from_environment() -> MilvusTestServer | None:
    """The server named by ``FASHIONREC_MILVUS_URI``, when set (not started nor stopped here)."""
    uri = os.environ.get(URI_ENV)
    return MilvusTestServer(uri, Path(".")) if uri else None


if __name__ == "__main__":  # a server to experiment with: python tests/milvus_server.py DIR
    running = start_server(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="milvus-"))
    print(f"Milvus at {running.uri} (pid {running.pid}); Ctrl-C stops it", flush=True)
    try:
        while running.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()

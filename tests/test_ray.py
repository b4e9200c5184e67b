"""Embedding on Ray (issue 12): a real Ray runtime, not a stand-in.

One local Ray runtime (2 CPUs) serves the module; a test of the multi-node
path starts a head node and a worker node as processes of their own. Ray
listens on every interface of this machine and advertises the machine's own
address, never 127.0.0.1, whatever it is told (it resolves loopback to that
address); token authentication is on. The tests connect only to this
machine's own addresses, through 127.0.0.1 where they choose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'fashionrec[ray]'")

from fashionrec.catalog import load_catalog  # noqa: E402
from fashionrec.embedding import ImageEmbedder, build_index  # noqa: E402
from fashionrec.embedding import ray_build  # noqa: E402
from fashionrec.embedding.ray_build import RayClusterError, RayExecutor, RayUnavailableError, ray_session  # noqa: E402
from fashionrec.errors import IndexFolderError  # noqa: E402
from fashionrec.index import IndexFolder  # noqa: E402

from tiny_backbone import SOURCE as TINY, register  # noqa: E402

# Ray Data's own deprecation notices, raised when it copies its settings for a run: not ours to act on.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

register()
REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
TIMING_FIELDS = ("created", "updated", "generation")


def tiny() -> ImageEmbedder:
    return ImageEmbedder("tiny-test", runtime="torch")


@dataclass
class Runtime:
    address: str
    """The GCS address of the module's local runtime, for drivers in other processes."""


@pytest.fixture(scope="module")
def ray_runtime(isolated_home):
    """The module's local Ray runtime (2 CPUs), opened as `fashionrec index --ray local` opens one.

    Its session folder lives under a short temporary folder (Ray's socket paths
    must fit in 107 bytes), removed at the end with everything in it.
    """
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_TMPDIR", str(temp))
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # Ray sets it in this process when it starts a runtime
    try:
        with ray_session("local", num_cpus=2) as ray:
            yield Runtime(ray.get_runtime_context().gcs_address)
    finally:
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode
        patch.undo()
        shutil.rmtree(temp, ignore_errors=True)


def assert_same_index(local: Path, other: Path) -> None:
    """``other`` holds the index of ``local``: same ids in the same order, same product rows, every vector at
    cosine >= 0.9999, same skipped list, same manifest apart from timing fields and the vectors' checksums."""
    a, b = IndexFolder.load(local), IndexFolder.load(other)
    assert b.products["id"].tolist() == a.products["id"].tolist()
    assert b.products.astype("string").fillna("\0").equals(a.products.astype("string").fillna("\0"))
    va, vb = np.asarray(a.embeddings, np.float64), np.asarray(b.embeddings, np.float64)
    cosine = (va * vb).sum(1) / (np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1))
    assert cosine.min() >= 0.9999, cosine.min()

    def comparable(manifest: dict) -> dict:
        manifest = {k: v for k, v in manifest.items() if k not in TIMING_FIELDS}
        manifest["checksums"] = {k: v for k, v in manifest["checksums"].items() if k != "embeddings"}
        return manifest

    assert comparable(b.manifest) == comparable(a.manifest)
    assert b.manifest["skipped"] == a.manifest["skipped"]


def checkpointed(out: Path) -> tuple[list[str], list[str]]:
    """The keys the checkpoint of ``out`` holds: ``(with a vector, failed)``, chunk by chunk, repeats kept."""
    vectors: list[str] = []
    failed: list[str] = []
    for chunk in sorted((out / ".partial").glob("chunk-*.npz")):
        with np.load(chunk) as data:
            vectors += [str(k) for k in data["keys"]]
            failed += [str(k) for k in data["failed_keys"]]
    return vectors, failed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DRIVER = TINY + textwrap.dedent('''
    # A driver in its own process: `build_index` on the Ray cluster at ADDRESS, once NODES nodes are up.
    import json, sys, time
    from fashionrec.catalog import load_catalog
    from fashionrec.embedding import ImageEmbedder, build_index
    from fashionrec.embedding.ray_build import RayExecutor, ray_session

    catalog, out, address, nodes, actors = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    with ray_session(address) as ray:
        deadline = time.monotonic() + 60
        while sum(node["Alive"] for node in ray.nodes()) < nodes:
            assert time.monotonic() < deadline, ray.nodes()
            time.sleep(0.2)
        executor = RayExecutor(address, actors=actors)
        summary = build_index(load_catalog(catalog), out, embedder=ImageEmbedder("tiny-test", runtime="torch"),
                              batch_size=4, checkpoint_every=8, executor=executor)
    print(json.dumps({"embedded": summary.embedded, "reused": summary.reused, "nodes": sorted(executor.nodes)}))
''')


def run_driver(catalog: Path, out: Path, address: str, *, nodes: int = 1, actors: int = 1, env=None,
               timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, str(catalog), str(out), address, str(nodes), str(actors)],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})},
                          timeout=timeout)


# ---------------------------------------------------------------- before the module's runtime starts


def test_an_unreachable_cluster_fails_at_once_in_one_line(make_catalog, tmp_path):
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process (it would be used instead)")
    catalog = load_catalog(make_catalog(6))
    started = time.monotonic()
    port = free_port()  # nothing listens there
    expected = (rf"cannot reach the Ray cluster at '127\.0\.0\.1:{port}': connection to 127\.0\.0\.1:{port} "
                r"refused; expected the address of a running head node")
    with pytest.raises(RayClusterError, match=expected) as error:
        build_index(catalog, tmp_path / "idx", embedder=tiny(), executor=RayExecutor(f"127.0.0.1:{port}"))
    assert "\n" not in str(error.value)
    assert time.monotonic() - started < 30  # Ray itself would retry for minutes
    assert not ray.is_initialized()


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    real = ray_build.importlib.util.find_spec
    monkeypatch.setattr(ray_build.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(RayUnavailableError, match=r"not installed: pip install 'fashionrec\[ray\]'$"):
        RayExecutor("local")


# ---------------------------------------------------------------- on the module's local runtime


def test_a_ray_build_equals_the_local_build(ray_runtime, make_catalog, tmp_path):
    catalog = load_catalog(make_catalog(40))  # one corrupt image, one product without an image file
    local = build_index(catalog, tmp_path / "local", embedder=tiny(), batch_size=4)
    seen: list[tuple[int, int]] = []
    executor = RayExecutor("local", actors=1)
    summary = build_index(catalog, tmp_path / "ray", embedder=tiny(), batch_size=4, checkpoint_every=8,
                          executor=executor, progress=lambda done, total: seen.append((done, total)))

    assert_same_index(tmp_path / "local", tmp_path / "ray")
    reasons = sorted(entry["reason"].split(":")[0] for entry in summary.skipped)
    assert reasons == ["no image file", "unreadable image"]
    assert (summary.count, summary.embedded, summary.reused) == (local.count, local.embedded, 0) == (38, 38, 0)
    # progress: every image counted once, in order, up to all 39 image files
    assert seen[-1] == (39, 39) and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert len(executor.nodes) == 1
    assert not (tmp_path / "ray" / ".partial").exists()


def test_an_interrupted_run_resumes_its_checkpoint_local_and_ray_alike(ray_runtime, make_catalog, tmp_path):
    """A local run stopped by Ctrl-C, then a Ray run killed (kill -9 of the driver) after two checkpoints, then a
    Ray run: each run embeds only what no earlier run checkpointed, and the end is the local build's index."""
    folder = make_catalog(40)
    catalog = load_catalog(folder)
    build_index(catalog, tmp_path / "reference", embedder=tiny(), batch_size=4)
    out = tmp_path / "idx"

    def interrupt(done: int, total: int) -> None:
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, out, embedder=tiny(), batch_size=4, checkpoint_every=8, progress=interrupt)
    after_local = sum(checkpointed(out), [])
    assert len(after_local) == 12  # a chunk at 8 images, and the 4 finished when Ctrl-C came

    # The driver dies at its 3rd crash point: after writing two chunks (the checkpoint folder exists already).
    killed = run_driver(folder, out, ray_runtime.address, env={"FASHIONREC_CRASH_AT": "3"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    vectors, failed = checkpointed(out)
    after_ray = vectors + failed
    assert len(after_ray) >= len(after_local) + 2 * 8  # two chunks of at least 8 images more
    assert len(set(after_ray)) == len(after_ray)  # nothing checkpointed was embedded again

    summary = build_index(catalog, out, embedder=tiny(), batch_size=4, checkpoint_every=8,
                          executor=RayExecutor("local", actors=1))
    assert summary.reused == len(after_ray)
    assert summary.embedded == 38 - len(vectors)  # only what no earlier run checkpointed
    assert_same_index(tmp_path / "reference", out)
    assert not (out / ".partial").exists()


ELSEWHERE = textwrap.dedent('''
    # A backbone whose weights differ on every machine but this one (the test's process): as if a worker node
    # had another weights file at the path the driver gave.
    import os, torch
    from fashionrec.models import BackboneConfig, Preprocessing, list_backbones, register_backbone

    def _build(weights_path):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        return net.eval(), "weights-here" if os.getpid() == DRIVER_PID else "weights-elsewhere"

    if "tiny-elsewhere" not in [c.name for c in list_backbones()]:
        register_backbone(BackboneConfig(
            name="tiny-elsewhere", dim=8, preprocessing=Preprocessing(input_size=32, resize_size=36),
            weights="differs per process", licence="n/a", description="test backbone", build=_build,
        ))
''')


def test_a_worker_with_other_weights_fails_the_run_with_one_clear_line(ray_runtime, make_catalog, tmp_path):
    exec(ELSEWHERE, {"DRIVER_PID": os.getpid()})
    catalog = load_catalog(make_catalog(6))
    with pytest.raises(IndexFolderError) as error:
        build_index(catalog, tmp_path / "idx", embedder=ImageEmbedder("tiny-elsewhere", runtime="torch"),
                    executor=RayExecutor("local", actors=1))
    assert str(error.value) == ("on a Ray worker: weights 'weights-elsewhere' differ from the driver's 'weights-here'; "
                                "expected the same weights file (or package) at the same path on every machine")
    assert not list((tmp_path / "idx").glob(".partial/chunk-*"))


def test_more_actors_than_a_local_runtime_holds_is_refused_before_any_work(ray_runtime, make_catalog, tmp_path):
    catalog = load_catalog(make_catalog(6))
    with pytest.raises(RayClusterError, match=r"3 actors of 1 CPUs and decoding tasks of 0\.5 CPUs need 3\.5 CPUs; "
                                              r"the Ray cluster has 2: expected fewer actors \(--ray-actors\)"):
        build_index(catalog, tmp_path / "idx", embedder=tiny(), executor=RayExecutor("local", actors=3))
    assert not (tmp_path / "idx" / ".partial").exists()


def test_index_command_with_ray_writes_the_local_build_s_index(ray_runtime, make_catalog, tmp_path):
    from typer.testing import CliRunner

    from fashionrec.cli import app

    if "--ray" not in " ".join(" ".join(p.opts) for p in typer_params(app, "index")):
        pytest.skip("`fashionrec index` has no --ray option yet")
    folder = make_catalog(12)
    build_index(load_catalog(folder), tmp_path / "local", embedder=tiny(), batch_size=4)
    result = CliRunner().invoke(app, ["index", str(folder), "--out", str(tmp_path / "ray"), "--backbone", "tiny-test",
                                      "--runtime", "torch", "--batch-size", "4", "--ray", "local", "--ray-actors", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    assert_same_index(tmp_path / "local", tmp_path / "ray")
    refused = CliRunner().invoke(app, ["index", str(folder), "--out", str(tmp_path / "r2"), "--ray", "local",
                                       "--workers", "2"], catch_exceptions=False)
    text = " ".join((refused.output + refused.stderr).split())
    assert refused.exit_code != 0 and "Traceback" not in text and "--workers 2" in text, text


def typer_params(app, name: str):
    import typer.main

    command = typer.main.get_command(app)
    return command.commands[name].params


# ---------------------------------------------------------------- a head node and a worker node


@pytest.fixture
def two_node_cluster(ray_runtime, tmp_path):
    """A head node (1 CPU) and a worker node (2 CPUs), each a `ray start --block` process of its own, stopped
    (SIGTERM, then SIGKILL) at the end whatever happens: `ray stop` would stop every Ray process of this user."""
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--disable-usage-stats"]
    started: list[subprocess.Popen] = []
    logs = []
    roles = {"head": ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"],
             "worker": [f"--address=127.0.0.1:{port}", "--num-cpus=2"]}
    try:
        # Both at once: the worker node waits for the head's GCS by itself, and each spends seconds importing Ray.
        for role, args in roles.items():
            log = open(tmp_path / f"{role}.log", "w+")
            logs.append(log)
            started.append(subprocess.Popen([str(RAY), "start", *args, *common], stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True))
        for role, process in zip(roles, started):
            wait_for_line(tmp_path / f"{role}.log", "Ray runtime started", process)
        yield f"127.0.0.1:{port}"
    finally:
        stop(started)
        for log in logs:
            log.close()


def wait_for_line(path: Path, text: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert process.poll() is None, path.read_text()
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.2)


def stop(processes: list[subprocess.Popen]) -> None:
    """End `ray start --block` processes and the node processes each started (its process group).

    All are asked at once (SIGTERM: each node drains, then stops its processes);
    what is left after 3 s is killed (a head node's drain can wait 30 s for
    nodes that are gone, and nothing of this cluster is kept).
    """
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
        except ProcessLookupError:
            pass
        process.wait(10)


def test_a_build_on_a_head_and_a_worker_node_equals_the_local_build(two_node_cluster, make_catalog, tmp_path):
    folder = make_catalog(40)
    build_index(load_catalog(folder), tmp_path / "local", embedder=tiny(), batch_size=4)
    # Two actors of one CPU, started before any batch is handed out: the head (1 CPU) holds one at most, and
    # Ray Data spreads actors over the nodes anyway, so each node embeds.
    result = run_driver(folder, tmp_path / "ray", two_node_cluster, nodes=2, actors=2)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["embedded"] == 38 and report["reused"] == 0
    assert len(report["nodes"]) == 2, report
    assert_same_index(tmp_path / "local", tmp_path / "ray")

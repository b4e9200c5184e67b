"""CLI layer, end to end with Typer's CliRunner: exit codes, one-line errors, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from fashionrec.cli import app
from fashionrec.index import IndexFolder

runner = CliRunner()

from tiny_backbone import register

register()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    text = result.stderr if result.stderr else result.output
    assert "Traceback" not in text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), text
    flat = " ".join(text.split())
    for needle in needles:
        assert needle in flat, flat


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("download", "eda", "index", "engine", "info", "recommend", "evaluate", "demo", "serve"):
        assert command in result.output


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "fashionrec", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "recommend" in proc.stdout


def test_download_without_network_fails_fast_and_clearly(monkeypatch):
    # A closed local port stands for "no route to Kaggle", also on machines that have internet.
    monkeypatch.setattr("fashionrec.catalog.hub.KAGGLE_HOST", ("127.0.0.1", 1))
    started = time.monotonic()
    result = invoke("download")
    assert time.monotonic() - started < 30
    assert_one_line_error(result, "network unreachable", "folder")


def test_download_unknown_variant():
    assert_one_line_error(invoke("download", "--variant", "huge"), "unknown variant 'huge'", "small, full")


def test_eda_writes_report(make_catalog, tmp_path):
    folder = make_catalog(40)
    result = invoke("eda", folder, "--out", tmp_path / "eda")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eda" / "summary.json").read_text())
    assert summary["total_products"] == 40
    assert summary["without_image"] == 1
    assert len(list((tmp_path / "eda").glob("*.png"))) >= 4
    assert (tmp_path / "eda" / "index.html").is_file()
    assert "40 products" in result.output


def test_eda_bad_catalog_and_bad_filter(tmp_path, make_catalog):
    assert_one_line_error(invoke("eda", tmp_path / "missing", "--out", tmp_path / "o"), "does not exist")
    folder = make_catalog(10)
    assert_one_line_error(invoke("eda", folder, "--out", tmp_path / "o", "--where", "colour=Red"),
                          "unknown attribute 'colour'")
    assert_one_line_error(invoke("eda", folder, "--out", tmp_path / "o", "--where", "gender"), "not KEY=VALUE")


def test_malformed_csv_names_the_line(tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "styles.csv").write_text(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
        "1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A\n2,Men\n"
    )
    assert_one_line_error(invoke("eda", folder, "--out", tmp_path / "o"), "styles.csv, line 3")


@pytest.fixture
def index_dir(make_catalog, tmp_path):
    folder = make_catalog(30)
    out = tmp_path / "idx"
    result = invoke("index", folder, "--out", out, "--backbone", "tiny-test", "--runtime", "torch")
    assert result.exit_code == 0, result.output
    return out


def test_index_reports_skips_and_reruns_as_no_op(index_dir, make_catalog):
    index = IndexFolder.load(index_dir)
    assert len(index) == 28  # one missing, one corrupt
    folder = IndexFolder.load(index_dir).catalog_root
    result = invoke("index", folder, "--out", index_dir, "--backbone", "tiny-test", "--runtime", "torch")
    assert result.exit_code == 0
    assert "up to date" in " ".join(result.output.split())


def test_index_unknown_backbone(make_catalog, tmp_path):
    result = invoke("index", make_catalog(5), "--out", tmp_path / "i", "--backbone", "vgg")
    assert_one_line_error(result, "unknown backbone 'vgg'", "resnet50", "efficientnet_lite0")


def test_recommend_json_matches_exact_search(index_dir):
    index = IndexFolder.load(index_dir)
    query = int(index.products["id"].iloc[4])
    result = invoke("recommend", index_dir, "--id", query, "-k", 5, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"]["id"] == query
    got = [r["id"] for r in payload["results"]]
    vectors = np.asarray(index.embeddings, dtype=np.float64)
    d = np.linalg.norm(vectors - vectors[4], axis=1)
    order = sorted((dist, int(pid)) for dist, pid in zip(d, index.products["id"]) if pid != query)
    assert got == [pid for _, pid in order[:5]]
    np.testing.assert_allclose([r["distance"] for r in payload["results"]], [x for x, _ in order[:5]], rtol=1e-5)
    for record in payload["results"]:
        assert {"id", "distance", "articleType", "productDisplayName"} <= set(record)
        assert list(record)[:2] == ["id", "distance"]
    assert list(payload) == ["query", "results"] and list(payload["query"])[0] == "id"


def test_recommend_where_and_plot(index_dir, tmp_path):
    index = IndexFolder.load(index_dir)
    kind = index.products["articleType"].value_counts().index[0]
    query = int(index.products["id"].iloc[0])
    png = tmp_path / "rec.png"
    result = invoke("recommend", index_dir, "--id", query, "--where", f"articleType={kind}", "--json", "--plot", png)
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert results and all(r["articleType"] == kind for r in results)
    from PIL import Image

    with Image.open(png) as picture:
        assert picture.size[0] > picture.size[1] > 50


def test_recommend_table_and_errors(index_dir):
    index = IndexFolder.load(index_dir)
    query = int(index.products["id"].iloc[0])
    result = invoke("recommend", index_dir, "--id", query)
    assert result.exit_code == 0 and "distance" in result.output
    assert_one_line_error(invoke("recommend", index_dir, "--id", 999999999), "999999999")
    assert_one_line_error(invoke("recommend", index_dir), "--id", "--image")
    assert_one_line_error(invoke("recommend", index_dir.parent / "nope", "--id", 1), "does not exist")


def test_recommend_by_photo_file_and_private_url(index_dir):
    """Local files are read by default; a URL of a private host (here 127.0.0.1) only with --allow-private-urls."""
    import http.server
    import threading
    from functools import partial

    index = IndexFolder.load(index_dir)
    row = 3
    product = int(index.products["id"].iloc[row])
    photo = index.catalog_root / index.products["image"].iloc[row]
    by_file = invoke("recommend", index_dir, "--image", photo, "-k", 3, "--json")
    assert by_file.exit_code == 0, by_file.output
    expected = json.loads(by_file.stdout)["results"]
    assert expected[0]["id"] == product and expected[0]["distance"] < 1e-5

    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(photo.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{photo.name}"
    try:
        refused = invoke("recommend", index_dir, "--image", url, "-k", 3, "--json")
        assert_one_line_error(refused, f"image URL {url} refused", "non-public address 127.0.0.1",
                              "pass --allow-private-urls for intranet hosts")
        assert len((refused.stderr or refused.output).strip().splitlines()) == 1
        assert requested == []  # refused before connecting
        allowed = invoke("recommend", index_dir, "--image", url, "-k", 3, "--json", "--allow-private-urls")
        assert allowed.exit_code == 0, allowed.output
        assert requested == [f"/{photo.name}"]
        assert json.loads(allowed.stdout) == {"query": {"image": url}, "results": expected}
    finally:
        server.shutdown()
        server.server_close()
    for bad in ("0", "-1", "nan"):
        assert_one_line_error(invoke("recommend", index_dir, "--image", url, "--url-timeout", bad),
                              f"--url-timeout {float(bad)}", "seconds above 0")


def test_evaluate_json(index_dir, tmp_path):
    result = invoke("evaluate", index_dir, "-k", 5, "--json", "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert 0.0 <= payload["overall"]["precision@5"] <= 1.0
    assert (tmp_path / "ev" / "evaluation.json").is_file()
    assert list((tmp_path / "ev").glob("*.png"))


def test_ray_option_may_be_given_without_an_address():
    """`index --ray` alone means a local Ray runtime: the command line is completed before Click parses it."""
    import subprocess
    import sys

    from fashionrec.cli.app import with_optional_values

    assert with_optional_values(["index", "c", "--out", "o", "--ray"])[-2:] == ["--ray", "local"]
    assert with_optional_values(["index", "c", "--ray", "--engine", "ivf"]) == ["index", "c", "--ray", "local",
                                                                               "--engine", "ivf"]
    assert with_optional_values(["index", "c", "--ray", "head:6379"]) == ["index", "c", "--ray", "head:6379"]
    done = subprocess.run([sys.executable, "-c", "from fashionrec.cli import main; main()", "index", "nowhere",
                           "--out", "o", "--ray", "--ray-actors", "0"], capture_output=True, text=True)
    assert done.returncode == 1 and "--ray-actors 0: expected a whole number of actors" in done.stderr

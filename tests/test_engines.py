"""Approximate engines end to end through the CLI: `index --engine`, `engine`, `info`, and `--engine` of
`recommend` / `evaluate` / `serve`, on the tiny backbone.

On indexes this small an approximate engine scans its candidates exactly (they are more than a quarter of
the products), so its answers must equal the exact engine's: these tests check the plumbing (files, manifest,
updates, fallbacks, messages), not recall; tests/test_search.py checks the engines themselves.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fashionrec.cli import app
from fashionrec.datasets import make_sample_catalog
from fashionrec.index import IndexFolder
from fashionrec.recommend import IndexInfo, Recommender
from fashionrec.search import saved_engines

from tiny_backbone import register

register()
runner = CliRunner()
TINY_ARGS = ("--backbone", "tiny-test", "--runtime", "torch")
ENGINE_FILES = {"engine.json", "faiss.index", "projection.npz", "fingerprints.npz"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def flat(text: str) -> str:
    """Text with Rich's wrapping undone: words separated by single spaces, table borders removed."""
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def assert_ok(result):
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    text = result.stderr or result.output
    assert "Traceback" not in text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), text
    assert len(lines) <= 3, text  # one message, wrapped at most at the terminal's width
    for needle in needles:
        assert needle in flat(text), flat(text)


def manifest_of(index_dir: Path) -> dict:
    return json.loads((index_dir / "manifest.json").read_text())


def engine_json(index_dir: Path, name: str, metric: str = "euclidean") -> dict:
    return json.loads((index_dir / "engines" / name / metric / "engine.json").read_text())


def engine_table(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """The engines table of a command's output: ``{(name, metric): {row label: cell text}}``.

    One column per engine, headed ``name (metric)``; a cell Rich wrapped continues on
    lines whose first cell is empty.
    """
    header: list[str] = []
    rows: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("┃") and not header:
            header = [cell.strip() for cell in line.strip().strip("┃").split("┃")]
        elif line.startswith("│") and header:
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            if cells[0] or not rows:
                rows.append(cells)
            else:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
    assert header, output
    table = {}
    for column, title in enumerate(header[1:], start=1):
        name, metric = title.rstrip(")").split(" (")
        table[(name, metric)] = {row[0]: row[column] for row in rows}
    return table


def engine_row(output: str, name: str, metric: str = "euclidean") -> dict[str, str]:
    """The figures the table shows for engine ``name`` built for ``metric``."""
    table = engine_table(output)
    assert (name, metric) in table, output
    return table[(name, metric)]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Rich reads the width at each print: no wrapping, so cells are compared whole."""
    monkeypatch.setenv("COLUMNS", "250")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> dict[str, Path]:
    """Versions of one 40-product catalog: v1 its first 30 products, full all 40, later v1's products but the first."""
    root = tmp_path_factory.mktemp("engines")
    full = make_sample_catalog(root / "full", 40, 0, corrupt=0, missing=0)
    styles = pd.read_csv(full / "styles.csv", dtype=str, keep_default_na=False)
    versions = {"full": full}
    for name, rows in (("v1", styles.iloc[:30]), ("later", styles.iloc[1:30])):
        shutil.copytree(full, root / name)
        rows.to_csv(root / name / "styles.csv", index=False)
        versions[name] = root / name
    return versions


@pytest.fixture(scope="module")
def built(catalogs, tmp_path_factory):
    """`fashionrec index v1 --engine ivf`: the folder and the command's result (copy it before changing it)."""
    out = tmp_path_factory.mktemp("built") / "idx"
    result = invoke("index", catalogs["v1"], "--out", out, *TINY_ARGS, "--engine", "ivf")
    assert_ok(result)
    return out, result


@pytest.fixture
def index_dir(built, tmp_path) -> Path:
    """A copy of the built index folder with its ivf engine, for a test to change."""
    copy = tmp_path / "idx"
    shutil.copytree(built[0], copy, symlinks=True)
    return copy


def ids_of(index_dir: Path) -> list[int]:
    return [int(i) for i in IndexFolder.load(index_dir).products["id"]]


def recommend_json(index_dir: Path, *args) -> tuple[dict, str]:
    result = invoke("recommend", index_dir, "--json", *args)
    assert_ok(result)
    return json.loads(result.stdout), result.stderr


# --------------------------------------------------------------------------- index --engine


def test_index_with_an_engine_builds_saves_and_lists_it(built):
    out, result = built
    manifest = manifest_of(out)
    [entry] = manifest["engines"]
    assert (entry["name"], entry["metric"]) == ("ivf", "euclidean")
    assert entry["vectors"] == manifest["count"] == 30
    assert entry["target_recall"] == 0.95 and 0 <= entry["recall_at_10"] <= 1
    assert entry["search_param"] == "nprobe" and entry["search_value"] >= 1
    folder = out / "engines" / "ivf" / "euclidean"
    assert ENGINE_FILES <= {p.name for p in folder.iterdir()}
    assert engine_json(out, "ivf")["vectors"]["index_generation"] == manifest["generation"]
    # the table comes after the index summary, on stdout, and says what was done
    text = result.stdout
    assert text.index(f"index {out}") < text.index("search engine saved")
    row = engine_row(text, "ivf")
    queries = engine_json(out, "ivf")["tuning"]["queries"]
    assert row["search"] == f"nprobe={entry['search_value']}"
    assert row["recall@10"] == f"{entry['recall_at_10']:.3f} on {queries} held-out products"
    assert row["target"] == "0.95" and row["done"] == "built"
    assert row["p50 / p99 ms"] == f"{entry['p50_ms']:.2f} / {entry['p99_ms']:.2f}"


def test_index_engine_exact_keeps_no_files(catalogs, tmp_path):
    result = invoke("index", catalogs["v1"], "--out", tmp_path / "idx", *TINY_ARGS, "--engine", "exact")
    assert_ok(result)
    assert not (tmp_path / "idx" / "engines").exists()
    assert "engines" not in manifest_of(tmp_path / "idx")


@pytest.mark.parametrize(("options", "needles"), [
    (("--engine", "annoy"), ("unknown search engine 'annoy'", "exact, hnsw, ivf")),
    (("--engine", "ivf", "--engine-metric", "manhattan"), ("manhattan", "euclidean")),
    (("--engine", "ivf", "--target-recall", "0"), ("--target-recall 0.0", "at most 1")),
    (("--engine", "ivf", "--target-recall", "1.5"), ("--target-recall 1.5",)),
])
def test_index_engine_mistakes_fail_before_any_work(catalogs, tmp_path, options, needles):
    out = tmp_path / "idx"
    assert_one_line_error(invoke("index", catalogs["v1"], "--out", out, *TINY_ARGS, *options), *needles)
    assert not out.exists()  # nothing embedded, no folder made


# --------------------------------------------------------------------------- recommend --engine


def test_recommend_with_the_engine_equals_exact(built):
    out, _ = built
    ids = ids_of(out)
    for query in (ids[0], ids[7], ids[-1]):
        for extra in ((), ("-k", "12"), ("--where", "gender=Women"), ("--metric", "euclidean", "-k", "3")):
            exact, _ = recommend_json(out, "--id", query, *extra)
            approximate, warnings = recommend_json(out, "--id", query, "--engine", "ivf", *extra)
            assert approximate == exact
            assert warnings == ""  # the saved engine answered: no fallback
    engine = Recommender.load(out, engine="ivf").engine("euclidean")
    assert engine.name == "ivf"


def test_recommend_falls_back_to_exact_when_the_metric_is_not_built(index_dir):
    """hnsw built for euclidean only: a cosine query is answered exactly, with one warning saying how to build it."""
    copy = index_dir
    assert_ok(invoke("engine", copy, "hnsw"))
    query = ids_of(copy)[3]
    command = [sys.executable, "-m", "fashionrec", "recommend", str(copy), "--id", str(query), "--json",
               "--metric", "cosine", "-k", "4"]
    env = {**os.environ, "COLUMNS": "1000"}  # no wrapping: the warning is one line
    fallback = subprocess.run([*command, "--engine", "hnsw"], capture_output=True, text=True, timeout=120, env=env)
    exact = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert fallback.returncode == 0, fallback.stderr
    lines = fallback.stderr.strip().splitlines()
    assert len(lines) == 1, fallback.stderr
    assert "not built" in lines[0] and "cosine" in lines[0] and "exact engine" in lines[0]
    assert f"fashionrec engine {copy} hnsw --metric cosine" in lines[0]
    assert json.loads(fallback.stdout) == json.loads(exact.stdout)
    assert exact.stderr == ""


def test_recommend_unknown_engine_is_one_line(built):
    out, _ = built
    assert_one_line_error(invoke("recommend", out, "--id", ids_of(out)[0], "--engine", "annoy"),
                          "unknown search engine 'annoy'")


# --------------------------------------------------------------------------- info


def test_info_shows_the_index_and_its_engines(built):
    out, _ = built
    manifest = manifest_of(out)
    [entry] = manifest["engines"]
    result = invoke("info", out)
    assert_ok(result)
    text = flat(result.stdout)
    assert f"products {manifest['count']}" in text and "tiny-test (8-d vectors)" in text
    assert "the whole catalog" in text
    row = engine_row(result.stdout, "ivf")
    queries = engine_json(out, "ivf")["tuning"]["queries"]
    assert row["recall@10"] == f"{entry['recall_at_10']:.3f} on {queries} held-out products"
    assert row["target"] == "0.95" and "done" not in row

    as_json = invoke("info", out, "--json")
    assert_ok(as_json)
    info = IndexInfo.model_validate_json(as_json.stdout)
    assert info.count == manifest["count"] and info.skipped == len(manifest.get("skipped", []))
    [engine] = info.engines
    assert (engine.name, engine.metric, engine.recall_at_10) == ("ivf", "euclidean", entry["recall_at_10"])
    assert engine.recall_queries == queries and engine.search_value == entry["search_value"]
    assert info.engine == "exact" and info.answering == {"euclidean": "exact", "cosine": "exact"}


def test_info_without_engines_and_errors(catalogs, tmp_path):
    out = tmp_path / "plain"
    assert_ok(invoke("index", catalogs["v1"], "--out", out, *TINY_ARGS))
    result = invoke("info", out)
    assert_ok(result)
    assert "no search engine saved" in flat(result.stdout)
    assert IndexInfo.model_validate_json(invoke("info", out, "--json").stdout).engines == []
    assert_one_line_error(invoke("info", tmp_path / "nowhere"), "nowhere", "not found")
    assert_one_line_error(invoke("info", catalogs["v1"]), "not an index folder")


# --------------------------------------------------------------------------- updates


def test_an_incremental_index_run_updates_the_engine(index_dir, catalogs):
    result = invoke("index", catalogs["full"], "--out", index_dir, *TINY_ARGS)
    assert_ok(result)
    assert engine_row(result.stdout, "ivf")["done"] == "updated (+10 added, -0 removed)"
    manifest = manifest_of(index_dir)
    assert manifest["count"] == 40 and manifest["engines"][0]["vectors"] == 40
    assert engine_json(index_dir, "ivf")["vectors"]["index_generation"] == manifest["generation"]
    new_product = ids_of(index_dir)[-1]  # one of the 10 added
    for query in (new_product, ids_of(index_dir)[0]):
        approximate, warnings = recommend_json(index_dir, "--id", query, "--engine", "ivf", "-k", 6)
        assert warnings == ""  # not stale: no fallback
        assert approximate == recommend_json(index_dir, "--id", query, "-k", 6)[0]
    assert any(r["id"] == new_product for r in recommend_json(index_dir, "--id", ids_of(index_dir)[0],
                                                               "--engine", "ivf", "-k", 39)[0]["results"])
    # nothing changed: the next run leaves the engine as it is
    again = invoke("index", catalogs["full"], "--out", index_dir, *TINY_ARGS)
    assert_ok(again)
    assert engine_row(again.stdout, "ivf")["done"] == "up to date"


def test_removing_a_product_updates_ivf_and_rebuilds_hnsw(index_dir, catalogs):
    assert_ok(invoke("engine", index_dir, "hnsw"))
    result = invoke("index", catalogs["later"], "--out", index_dir, *TINY_ARGS)
    assert_ok(result)
    assert engine_row(result.stdout, "ivf")["done"] == "updated (+0 added, -1 removed)"
    assert engine_row(result.stdout, "hnsw")["done"] == "rebuilt (this index cannot remove vectors)"
    gone = ids_of(index_dir)
    for name in ("ivf", "hnsw"):
        payload, warnings = recommend_json(index_dir, "--id", gone[0], "--engine", name, "-k", 28)
        assert warnings == "" and len(payload["results"]) == 28
        assert {r["id"] for r in payload["results"]} == set(gone) - {gone[0]}  # the removed product is not found


# --------------------------------------------------------------------------- the engine command


def test_engine_command_adds_updates_and_rebuilds(index_dir):
    added = invoke("engine", index_dir, "hnsw")
    assert_ok(added)
    assert engine_row(added.stdout, "hnsw")["done"] == "built"
    assert engine_row(added.stdout, "ivf")["done"] == "up to date"
    assert ENGINE_FILES <= {p.name for p in (index_dir / "engines" / "hnsw" / "euclidean").iterdir()}
    assert {(e["name"], e["metric"]) for e in manifest_of(index_dir)["engines"]} == {("hnsw", "euclidean"),
                                                                                     ("ivf", "euclidean")}
    assert engine_row(invoke("engine", index_dir, "hnsw").stdout, "hnsw")["done"] == "up to date"

    before = os.path.realpath(index_dir / "engines" / "ivf" / "euclidean")
    rebuilt = invoke("engine", index_dir, "ivf", "--rebuild")
    assert_ok(rebuilt)
    assert engine_row(rebuilt.stdout, "ivf")["done"] == "rebuilt (--rebuild)"
    assert os.path.realpath(index_dir / "engines" / "ivf" / "euclidean") != before  # written anew, switched in
    assert not os.path.exists(before)  # the replaced folder is gone

    changed = invoke("engine", index_dir, "hnsw", "--M", 16, "--target-recall", 0.9)
    assert_ok(changed)
    assert engine_row(changed.stdout, "hnsw")["done"] == "rebuilt (--M 32 → 16, --target-recall 0.95 → 0.9)"
    assert engine_json(index_dir, "hnsw")["params"]["M"] == 16
    # a rebuild keeps the parameters it was given before
    assert_ok(invoke("engine", index_dir, "hnsw", "--rebuild"))
    assert engine_json(index_dir, "hnsw")["params"]["M"] == 16
    assert engine_json(index_dir, "hnsw")["params"]["target_recall"] == 0.9

    cosine = invoke("engine", index_dir, "ivf", "--metric", "cosine")
    assert_ok(cosine)
    assert engine_row(cosine.stdout, "ivf", "cosine")["done"] == "built"
    query = ids_of(index_dir)[5]
    approximate, warnings = recommend_json(index_dir, "--id", query, "--engine", "ivf", "--metric", "cosine")
    assert warnings == "" and approximate == recommend_json(index_dir, "--id", query, "--metric", "cosine")[0]


def _hold_lock(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_engine_command_mistakes_are_one_line(index_dir, catalogs, tmp_path):
    cases = [
        (("engine", tmp_path / "nowhere", "ivf"), ("nowhere", "not found")),
        (("engine", catalogs["v1"], "ivf"), ("not an index folder",)),
        (("engine", index_dir, "annoy"), ("unknown search engine 'annoy'", "exact, hnsw, ivf")),
        (("engine", index_dir, "exact"), ("exact engine keeps no files",)),
        (("engine", index_dir, "hnsw", "--nlist", 8), ("--nlist: not an option of the hnsw engine",)),
        (("engine", index_dir, "ivf", "--M", 8), ("--M: not an option of the ivf engine",)),
        (("engine", index_dir, "hnsw", "--M", 1), ("M must be a whole number >= 2, got 1",)),
        (("engine", index_dir, "ivf", "--metric", "manhattan"), ("manhattan",)),
        (("engine", index_dir, "ivf", "--target-recall", 2), ("--target-recall 2.0",)),
    ]
    for args, needles in cases:
        assert_one_line_error(invoke(*args), *needles)
    assert not (index_dir / "engines" / "hnsw").exists()
    fd = _hold_lock(index_dir)
    try:
        assert_one_line_error(invoke("engine", index_dir, "hnsw"), "is being written by another")
    finally:
        os.close(fd)
    assert not (index_dir / "engines" / "hnsw").exists()


# --------------------------------------------------------------------------- evaluate and serve


def test_evaluate_with_the_engine(built, tmp_path):
    out, _ = built
    exact = invoke("evaluate", out, "-k", 5, "--json")
    approximate = invoke("evaluate", out, "-k", 5, "--json", "--engine", "ivf", "--photo-queries", 3,
                         "--out", tmp_path / "ev")
    assert_ok(exact)
    assert_ok(approximate)
    a, e = json.loads(approximate.stdout), json.loads(exact.stdout)
    assert a["engine"] == "ivf" and e["engine"] == "exact"
    assert a["overall"] == e["overall"] and a["per_class"] == e["per_class"]  # the engine answers exactly here
    assert a["photo_queries"]["n_queries"] == 3
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["engine"] == "ivf"
    table = invoke("evaluate", out, "-k", 5, "--engine", "ivf")
    assert_ok(table)
    assert "ivf engine" in flat(table.stdout)
    assert_one_line_error(invoke("evaluate", out, "--engine", "hnsw"), "hnsw engine is not built",
                          f"fashionrec engine {out} hnsw --metric euclidean")
    assert_one_line_error(invoke("evaluate", out, "--engine", "ivf", "--normalize"), "cosine metric instead")


def test_serve_checks_the_engine_before_serving(built):
    out, _ = built
    assert_one_line_error(invoke("serve", out, "--engine", "annoy"), "unknown search engine 'annoy'")

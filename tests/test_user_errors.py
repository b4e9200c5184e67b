"""User mistakes through the CLI: each is one line that says what to do, found before the long work.

Option ranges and an unwritable ``--out`` fail before the model is loaded or an
image read; a manifest with a field of the wrong type names the field; a ``k``
far beyond the index size costs no more than ``k = N``.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from fashionrec.cli import app
from fashionrec.index import IndexFolder

from tiny_backbone import register

register()
runner = CliRunner()
TINY = ("--backbone", "tiny-test", "--runtime", "torch")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *needles):
    """Exit code != 0, exactly one line starting with "error:", no traceback, no "internal error"."""
    assert result.exit_code != 0, result.output
    text = result.stderr if result.stderr else result.output
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert "Traceback" not in text and "internal error" not in text, text
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if a command loads the model: the checks under test must come first."""

    def refuse(self):
        raise AssertionError("the model was loaded before the user's mistake was reported")

    monkeypatch.setattr("fashionrec.embedding.embedder.ImageEmbedder.settings", refuse)


@pytest.fixture(scope="module")
def built_index(tmp_path_factory):
    """A 30-product catalog (28 with a usable image) indexed with the tiny backbone."""
    from fashionrec.datasets.sample import make_sample_catalog

    root = tmp_path_factory.mktemp("user-errors")
    catalog = make_sample_catalog(root / "catalog", 30, 0, corrupt=1, missing=1, malformed_rows=0)
    out = root / "idx"
    result = invoke("index", catalog, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    return catalog, out


# --------------------------------------------------------------------------- index: option ranges


@pytest.mark.parametrize(
    ("option", "value", "needles"),
    [
        ("--workers", -1, ("--workers -1", "1 or more", "0 for the default")),
        ("--batch-size", 0, ("--batch-size 0", "1 or more")),
        ("--batch-size", -5, ("--batch-size -5", "1 or more")),
    ],
)
def test_index_option_out_of_range_fails_before_any_work(make_catalog, tmp_path, no_model, option, value, needles):
    out = tmp_path / "idx"
    result = invoke("index", make_catalog(5), "--out", out, *TINY, option, value)
    assert_one_line_error(result, *needles)
    assert not out.exists()  # nothing was created either


# --------------------------------------------------------------------------- index: --out that cannot hold an index


def test_index_out_is_a_file(make_catalog, tmp_path, no_model):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    result = invoke("index", make_catalog(5), "--out", out, *TINY)
    assert_one_line_error(result, str(out), "is an existing file", "--out")
    assert out.read_text() == "mine"


def test_index_out_under_a_file(make_catalog, tmp_path, no_model):
    (tmp_path / "file").write_text("")
    result = invoke("index", make_catalog(5), "--out", tmp_path / "file" / "idx", *TINY)
    assert_one_line_error(result, "cannot create the index folder", "--out")


def test_index_out_under_proc(make_catalog, no_model):
    result = invoke("index", make_catalog(5), "--out", "/proc/fashionrec-test/idx", *TINY)
    assert_one_line_error(result, "/proc/fashionrec-test/idx", "--out")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_index_out_read_only_folder(make_catalog, tmp_path, no_model):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = invoke("index", make_catalog(5), "--out", out, *TINY)
    finally:
        out.chmod(stat.S_IRWXU)
    assert_one_line_error(result, "cannot write into the index folder", str(out))
    assert list(out.iterdir()) == []


def test_index_out_not_writable_is_reported_before_the_model(make_catalog, tmp_path, no_model, monkeypatch):
    """The read-only case where tests run as root: the folder refuses new files (EACCES)."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("fashionrec.index.manifest.tempfile.mkstemp", refuse)
    out = tmp_path / "ro"
    out.mkdir()
    result = invoke("index", make_catalog(5), "--out", out, *TINY)
    assert_one_line_error(result, "cannot write into the index folder", "Permission denied", "--out")


def test_build_index_checks_the_folder_before_loading_the_model(make_catalog, tmp_path, no_model):
    from fashionrec.catalog import load_catalog
    from fashionrec.embedding import ImageEmbedder, build_index
    from fashionrec.errors import IndexFolderError

    out = tmp_path / "file"
    out.write_text("")
    with pytest.raises(IndexFolderError, match="is an existing file"):
        build_index(load_catalog(make_catalog(5)), out, embedder=ImageEmbedder("tiny-test", runtime="torch"))


def test_index_into_a_new_folder_leaves_no_probe(built_index):
    _, out = built_index
    assert not [p for p in out.iterdir() if p.name.startswith(".fashionrec-write-check")]


# --------------------------------------------------------------------------- manifest fields of the wrong type


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [("dim", "abc", '"abc" (string)'), ("count", None, "null"), ("dim", 8.5, "8.5 (number)"),
     ("count", True, "true (boolean)"), ("dim", 0, "0 (number)"), ("count", -1, "-1 (number)")],
)
def test_manifest_field_of_the_wrong_type_names_it(built_index, tmp_path, key, value, shown):
    import shutil

    _, source = built_index
    folder = tmp_path / "idx"
    shutil.copytree(source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for command in (("recommend", folder, "--id", "1"), ("evaluate", folder, "-k", 3)):
        result = invoke(*command)
        assert_one_line_error(result, "manifest.json", repr(key), shown, "whole number")


# --------------------------------------------------------------------------- k far beyond the index size


def test_recommend_and_evaluate_with_huge_k(built_index):
    _, out = built_index
    n = len(IndexFolder.load(out))
    product = int(IndexFolder.load(out).products["id"].iloc[0])
    result = invoke("recommend", out, "--id", product, "-k", 200_000_000, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"]) == n - 1  # every other product, once
    result = invoke("evaluate", out, "-k", 100_000_000_000, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["k"] == 100_000_000_000 and payload["n_products"] == n


@pytest.mark.parametrize(
    ("option", "value", "needles"),
    [("--sample", 0, ("--sample 0", "1 or more")), ("--photo-queries", -1, ("--photo-queries -1", "0 (none) or more"))],
)
def test_evaluate_option_out_of_range(built_index, option, value, needles):
    _, out = built_index
    assert_one_line_error(invoke("evaluate", out, option, value), *needles)

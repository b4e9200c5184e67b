"""Corrupted index folders: every damage gives a clear error or is repaired, never a silently wrong answer.

Each case damages a copy of a clean index folder the way a disk, a crashed
tool or a careless hand would. Then:

* every reader (`fashionrec recommend`, `fashionrec evaluate`) stops with one
  line that names the folder and says to re-run `fashionrec index` — or, when
  the damage cannot change any answer, answers exactly as the clean index does;
* `fashionrec index` on the damaged folder gives back the clean index
  (bit-identical vectors per id), except for a folder of another format
  version, which it refuses to touch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fashionrec.catalog import load_catalog
from fashionrec.cli import app
from fashionrec.embedding import ImageEmbedder, build_index
from fashionrec.index import CURRENT_LINK, EMBEDDINGS_FILE, GENERATIONS_DIR, MANIFEST_FILE, PRODUCTS_FILE

from conftest import TINY_ARGS, assert_tidy, index_content
from tiny_backbone import register

register()


def data_file(out: Path, name: str) -> Path:
    """The real file behind a documented path (in the current generation)."""
    return Path(os.path.realpath(out / name))


def rewrite_manifest(out: Path, **changes) -> None:
    path = data_file(out, MANIFEST_FILE)
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def save_vectors(out: Path, transform) -> None:
    path = data_file(out, EMBEDDINGS_FILE)
    vectors = np.load(path)
    np.save(path, transform(vectors))


def poison(out: Path, value: float) -> None:
    def change(vectors):
        vectors = vectors.copy()
        vectors[3, 1] = value
        return vectors

    save_vectors(out, change)


def shuffle_products(out: Path) -> None:
    """Reorder products.parquet's rows, keeping its schema metadata (what pyarrow does by default)."""
    path = data_file(out, PRODUCTS_FILE)
    table = pq.read_table(path)
    pq.write_table(table.take(np.roll(np.arange(table.num_rows), 1)), path)


def swap_rows(vectors):
    vectors = vectors.copy()
    vectors[[0, 1]] = vectors[[1, 0]]
    return vectors


def manifest_of_another_generation(out: Path) -> None:
    rewrite_manifest(out, generation="0" * 32)


def unlink(out: Path, name: str) -> None:
    data_file(out, name).unlink()


DAMAGES = {
    "embeddings.npy deleted": lambda out: unlink(out, EMBEDDINGS_FILE),
    "products.parquet deleted": lambda out: unlink(out, PRODUCTS_FILE),
    "manifest.json deleted": lambda out: unlink(out, MANIFEST_FILE),
    "embeddings.npy zero bytes": lambda out: data_file(out, EMBEDDINGS_FILE).write_bytes(b""),
    "products.parquet zero bytes": lambda out: data_file(out, PRODUCTS_FILE).write_bytes(b""),
    "manifest.json zero bytes": lambda out: data_file(out, MANIFEST_FILE).write_bytes(b""),
    "embeddings.npy truncated": lambda out: truncate(data_file(out, EMBEDDINGS_FILE), 0.6),
    "products.parquet truncated": lambda out: truncate(data_file(out, PRODUCTS_FILE), 0.6),
    "manifest.json truncated": lambda out: truncate(data_file(out, MANIFEST_FILE), 0.6),
    "embeddings as float64": lambda out: save_vectors(out, lambda v: v.astype(np.float64)),
    "embeddings as float16": lambda out: save_vectors(out, lambda v: v.astype(np.float16)),
    "embeddings one row short": lambda out: save_vectors(out, lambda v: v[:-1]),
    "embeddings of another dim": lambda out: save_vectors(out, lambda v: np.hstack([v, v])),
    "a NaN in a vector": lambda out: poison(out, np.nan),
    "an inf in a vector": lambda out: poison(out, np.inf),
    "a vector changed": lambda out: poison(out, 0.123),
    "embeddings rows swapped": lambda out: save_vectors(out, swap_rows),
    "embeddings rows shuffled": lambda out: save_vectors(out, lambda v: v[np.random.default_rng(0).permutation(len(v))]),
    "products rows shuffled": shuffle_products,
    "manifest of another generation": manifest_of_another_generation,
    "manifest dim a string": lambda out: rewrite_manifest(out, dim="abc"),
    "manifest count null": lambda out: rewrite_manifest(out, count=None),
    "manifest dim wrong": lambda out: rewrite_manifest(out, dim=16),
    "manifest count wrong": lambda out: rewrite_manifest(out, count=5),
    "manifest preprocessing a list": lambda out: rewrite_manifest(out, preprocessing=[1, 2]),
    "manifest checksums tampered": lambda out: rewrite_manifest(out, checksums={"algorithm": "crc32", "ids": 1}),
    "manifest not an object": lambda out: data_file(out, MANIFEST_FILE).write_text("[1, 2]"),
    "current link deleted": lambda out: (out / CURRENT_LINK).unlink(),
    "current link to a missing generation": lambda out: shutil.rmtree(data_file(out, MANIFEST_FILE).parent),
    "generations folder deleted": lambda out: shutil.rmtree(out / GENERATIONS_DIR),
    "top-level embeddings.npy link deleted": lambda out: (out / EMBEDDINGS_FILE).unlink(),
}

HARMLESS = {"top-level embeddings.npy link deleted"}
"""Damage that cannot change an answer: readers resolve ``current`` themselves; `index` restores the link."""


@pytest.fixture(scope="module")
def clean_index(tmp_path_factory):
    """(catalog folder, clean index folder, its content, the ids of a recommend query and its answer)."""
    from fashionrec.datasets import make_sample_catalog

    base = tmp_path_factory.mktemp("folders")
    catalog = make_sample_catalog(base / "catalog", 16, 0, corrupt=1, missing=1)
    out = base / "clean"
    build_index(load_catalog(catalog), out, embedder=ImageEmbedder("tiny-test", runtime="torch"), batch_size=4)
    content = index_content(out)
    query = next(iter(content["vectors"]))
    answer = recommend(out, query)
    assert answer.exit_code == 0, answer.output
    return catalog, out, content, query, json.loads(answer.stdout)


def recommend(out: Path, query):
    return CliRunner().invoke(app, ["recommend", str(out), "--id", str(query), "-k", "5", "--json"],
                              catch_exceptions=False)


def one_line_error(result) -> str:
    """The error a command printed, after checking it failed with one `error:` line and no traceback."""
    text = result.stderr if result.stderr else result.output
    assert result.exit_code != 0, result.output
    assert "Traceback" not in text, text
    assert text.strip().startswith("error:"), text
    return " ".join(text.split())


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_folder_is_refused_clearly_then_repaired_by_index(clean_index, tmp_path, damage):
    catalog, clean_out, clean, query, answer = clean_index
    out = tmp_path / "idx"
    shutil.copytree(clean_out, out, symlinks=True)
    DAMAGES[damage](out)

    result = recommend(out, query)
    if damage in HARMLESS:
        assert result.exit_code == 0 and json.loads(result.stdout) == answer
    else:
        message = one_line_error(result)
        assert str(out) in message, message
        assert "fashionrec index" in message, message  # says what repairs it
        evaluated = CliRunner().invoke(app, ["evaluate", str(out), "-k", "3"], catch_exceptions=False)
        assert one_line_error(evaluated)

    repaired = CliRunner().invoke(app, ["index", str(catalog), "--out", str(out), *TINY_ARGS],
                                  catch_exceptions=False)
    assert repaired.exit_code == 0, repaired.output
    assert index_content(out) == clean
    assert_tidy(out)
    assert json.loads(recommend(out, query).stdout) == answer


def test_a_folder_of_another_format_version_is_refused_not_rebuilt(clean_index, tmp_path):
    catalog, clean_out, _, query, _ = clean_index
    out = tmp_path / "idx"
    shutil.copytree(clean_out, out, symlinks=True)
    rewrite_manifest(out, format_version=99)
    before = data_file(out, EMBEDDINGS_FILE).read_bytes()
    for args in (["recommend", str(out), "--id", str(query)],
                 ["index", str(catalog), "--out", str(out), *TINY_ARGS]):
        message = one_line_error(CliRunner().invoke(app, args, catch_exceptions=False))
        assert "format_version 99" in message, message
    assert data_file(out, EMBEDDINGS_FILE).read_bytes() == before  # left as it was

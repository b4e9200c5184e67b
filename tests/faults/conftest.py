"""Fixtures of the fault suite: a warm fork server for child `fashionrec` processes, and index comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fashionrec.index import CURRENT_LINK, EMBEDDINGS_FILE, GENERATIONS_DIR, MANIFEST_FILE, PRODUCTS_FILE, IndexFolder
from forkserver import ForkServer

TINY_ARGS = ("--backbone", "tiny-test", "--runtime", "torch")


@pytest.fixture(scope="session")
def forkserver(isolated_home):
    """Runs `fashionrec ...` as real child processes, forked from one interpreter that has imported everything."""
    server = ForkServer()
    yield server
    server.close()


def index_content(out: Path) -> dict:
    """What a user gets from an index folder, for comparing two of them.

    Loads it (every check on), then reads the three documented top-level paths
    as any other tool would and checks they are the same generation; returns
    ``{"vectors": {id: vector bytes}, "products": rows by id, "skipped": sorted skipped entries, "where": ...}``.
    """
    index = IndexFolder.load(out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    table = pq.read_table(out / PRODUCTS_FILE)
    vectors = np.load(out / EMBEDDINGS_FILE)
    assert table.schema.metadata[b"fashionrec.generation"].decode() == manifest["generation"] == index.manifest["generation"]
    assert len(vectors) == table.num_rows == manifest["count"] == len(index)
    ids = table.column("id").to_pylist()
    assert np.array_equal(vectors, np.asarray(index.embeddings))
    rows = table.to_pylist()
    return {
        "vectors": {pid: vec.tobytes() for pid, vec in zip(ids, vectors)},
        "products": {row["id"]: row for row in rows},
        "skipped": sorted((str(e["id"]), e["reason"]) for e in manifest["skipped"]),
        "where": manifest["catalog"]["where"],
    }


def assert_tidy(out: Path) -> None:
    """A finished index folder: one generation (the current one), no checkpoint, no temporary files left."""
    current = (out / CURRENT_LINK).resolve().name
    assert [p.name for p in (out / GENERATIONS_DIR).iterdir()] == [current]
    assert not (out / ".partial").exists()
    leftovers = [p for p in out.rglob(".*.tmp")]
    assert not leftovers, leftovers

"""An index folder survives a crash at any step of its final writes: it shows one generation, never a mix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fashionrec.catalog import load_catalog
from fashionrec.embedding import ImageEmbedder, build_index
from fashionrec.embedding import assemble as assemble_module
from fashionrec.errors import IndexFolderError
from fashionrec.index import CURRENT_LINK, EMBEDDINGS_FILE, GENERATIONS_DIR, MANIFEST_FILE, PRODUCTS_FILE, IndexFolder

from tiny_backbone import register

register()

STEPS = ("replace", "symlink", "link")
"""The file-system calls of a write at which a crash is simulated."""


class Crash(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


def tiny() -> ImageEmbedder:
    return ImageEmbedder("tiny-test", runtime="torch")


def build(folder: Path, out: Path):
    return build_index(load_catalog(folder), out, embedder=tiny(), batch_size=4)


def by_id(index: IndexFolder) -> dict:
    """Product id -> the bytes of its vector."""
    return {int(pid): np.asarray(vec).tobytes() for pid, vec in zip(index.products["id"], index.embeddings)}


def documented_files(out: Path) -> dict:
    """The index as a tool that opens the three documented paths sees it (id -> vector bytes), after checking they agree."""
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    table = pq.read_table(out / PRODUCTS_FILE)
    vectors = np.load(out / EMBEDDINGS_FILE)
    assert table.schema.metadata[b"fashionrec.generation"].decode() == manifest["generation"]
    assert len(vectors) == table.num_rows == manifest["count"]
    return {int(pid): vec.tobytes() for pid, vec in zip(table.column("id").to_pylist(), vectors)}


def crash_at(monkeypatch, step: int) -> list[int]:
    """Make the ``step``-th file-system call (counted from 0) of the next index write raise :class:`Crash`.

    Returns a one-item list that holds the number of calls made once the write ends.
    """
    calls = [0]
    write_index = assemble_module.write_index

    def counting(name):
        real = getattr(os, name)

        def call(*args, **kwargs):
            if armed:
                if calls[0] == step:
                    raise Crash(f"killed at {name} #{step}")
                calls[0] += 1
            return real(*args, **kwargs)

        return call

    armed = False

    def armed_write(*args, **kwargs):
        nonlocal armed
        armed = True
        try:
            return write_index(*args, **kwargs)
        finally:
            armed = False

    for name in STEPS:
        monkeypatch.setattr(os, name, counting(name))
    monkeypatch.setattr(assemble_module, "write_index", armed_write)
    return calls


def crash_sequence(monkeypatch, run):
    """Call ``run(step)`` with a crash armed at step 0, 1, ... until a write gets through; returns the steps seen."""
    step = 0
    while True:
        with monkeypatch.context() as patch:
            calls = crash_at(patch, step)
            try:
                run(step)
            except Crash:
                step += 1
                continue
        assert calls[0] == step  # the write got through: every step has been crashed once
        return step


@pytest.fixture
def catalogs(make_catalog, tmp_path):
    """Two versions of a 12-product catalog with the same count: v2 drops the first product and adds the last."""
    folder = make_catalog(12, corrupt=0, missing=0)
    styles = pd.read_csv(folder / "styles.csv", dtype=str, keep_default_na=False)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for dest, rows in ((v1, styles.iloc[:11]), (v2, styles.iloc[1:])):
        shutil.copytree(folder, dest, copy_function=shutil.copy2)
        rows.to_csv(dest / "styles.csv", index=False)
    return v1, v2


def flat(out: Path) -> None:
    """Turn an index folder into the layout written before generations existed: real files at the top level."""
    for name in (EMBEDDINGS_FILE, PRODUCTS_FILE, MANIFEST_FILE):
        data = (out / name).read_bytes()
        (out / name).unlink()
        (out / name).write_bytes(data)
    (out / CURRENT_LINK).unlink()
    shutil.rmtree(out / GENERATIONS_DIR)


def test_a_first_build_killed_during_its_writes_resumes_and_equals_a_clean_build(catalogs, tmp_path, monkeypatch):
    v1, _ = catalogs
    build(v1, tmp_path / "clean")
    clean = by_id(IndexFolder.load(tmp_path / "clean"))
    seen = []

    def run(step):
        out = tmp_path / f"first-{step}"
        seen.append(out)
        return build(v1, out)

    steps = crash_sequence(monkeypatch, run)
    assert steps >= 3  # at least the three data files and the switch
    for out in seen[:-1]:  # each crashed folder
        try:
            assert by_id(IndexFolder.load(out)) == clean  # switched in before the crash: complete
        except IndexFolderError:
            pass  # not switched in: no index yet
        summary = build(v1, out)  # resumes, from the checkpoint
        assert summary.embedded == 0 and summary.reused == len(clean)
        assert by_id(IndexFolder.load(out)) == clean
        assert documented_files(out) == clean
        assert sorted(p.name for p in (out / GENERATIONS_DIR).iterdir()) == [IndexFolder.load(out).manifest["generation"]]


@pytest.mark.parametrize("layout", ["generations", "flat"])
def test_an_update_killed_during_its_writes_leaves_one_generation(catalogs, tmp_path, monkeypatch, layout):
    """Same product count, one removed and one added: a mix would put vectors under the wrong ids."""
    v1, v2 = catalogs
    base = tmp_path / "base"
    build(v1, base)
    before = by_id(IndexFolder.load(base))
    if layout == "flat":
        flat(base)
        assert by_id(IndexFolder.load(base)) == before  # the old layout still loads
    reference = tmp_path / "reference"
    shutil.copytree(base, reference, symlinks=True)
    build(v2, reference)
    after = by_id(IndexFolder.load(reference))
    assert set(after) != set(before) and len(after) == len(before)
    seen = []

    def run(step):
        out = tmp_path / f"update-{step}"
        shutil.copytree(base, out, symlinks=True)
        seen.append(out)
        return build(v2, out)

    crash_sequence(monkeypatch, run)
    for out in seen[:-1]:
        loaded = by_id(IndexFolder.load(out))
        assert loaded in (before, after)  # the previous generation or the new one, never a mix
        assert documented_files(out) == loaded
        summary = build(v2, out)
        assert by_id(IndexFolder.load(out)) == after  # vectors bit-identical per id to an uninterrupted update
        assert documented_files(out) == after
        assert summary.count == len(after)
        assert (out / CURRENT_LINK).is_symlink()
        assert len(list((out / GENERATIONS_DIR).iterdir())) == 1  # unfinished and old generations are gone


def test_an_old_flat_folder_loads_and_its_next_write_moves_it_to_generations(catalogs, tmp_path):
    v1, v2 = catalogs
    out = tmp_path / "idx"
    build(v1, out)
    before = by_id(IndexFolder.load(out))
    flat(out)
    assert not (out / CURRENT_LINK).exists() and not (out / EMBEDDINGS_FILE).is_symlink()
    assert by_id(IndexFolder.load(out)) == before
    assert build(v1, out).unchanged  # nothing to do: nothing is written either
    summary = build(v2, out)
    assert summary.embedded == 1
    index = IndexFolder.load(out)
    assert (out / CURRENT_LINK).is_symlink() and (out / EMBEDDINGS_FILE).is_symlink()
    assert [p.name for p in (out / GENERATIONS_DIR).iterdir()] == [index.manifest["generation"]]
    assert documented_files(out) == by_id(index)
    assert {pid: vec for pid, vec in by_id(index).items() if pid in before} == {
        pid: vec for pid, vec in before.items() if pid in by_id(index)
    }


def test_files_brought_together_from_different_runs_are_refused(catalogs, tmp_path):
    """The products and manifest of the previous run beside the new vectors: same count, agreeing tokens, wrong rows."""
    v1, v2 = catalogs
    out = tmp_path / "idx"
    build(v1, out)
    old = {name: (out / name).read_bytes() for name in (PRODUCTS_FILE, MANIFEST_FILE)}
    build(v2, out)
    for name, data in old.items():
        (out / name).write_bytes(data)  # through the link: into the current generation
    with pytest.raises(IndexFolderError, match="inconsistent"):
        IndexFolder.load(out)


def test_a_checkpoint_beside_files_of_an_older_crashed_build_resumes(catalogs, tmp_path, monkeypatch):
    """What a build killed by an earlier fashionrec leaves: ``.partial`` and a lone top-level embeddings.npy."""
    v1, _ = catalogs
    out = tmp_path / "idx"
    with monkeypatch.context() as patch:
        crash_at(patch, 0)
        with pytest.raises(Crash):
            build(v1, out)
    np.save(out / EMBEDDINGS_FILE, np.zeros((3, 8), np.float32))
    summary = build(v1, out)
    assert summary.embedded == 0 and summary.count == 11
    assert documented_files(out) == by_id(IndexFolder.load(out))

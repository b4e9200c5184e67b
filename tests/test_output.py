"""Output layer: atomic files with ordinary permissions, plain JSON values."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from fashionrec.output import atomic_write, json_value


@pytest.fixture
def umask():
    """Set a umask for one test, restored after it."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_permissions_of_a_plain_open(tmp_path, umask, mask, mode):
    umask(mask)
    target = tmp_path / "manifest.json"
    atomic_write(target, lambda f: f.write(b"{}"))
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() == b"{}"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "embeddings.npy"
    target.write_bytes(b"old")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings.npy"]


def test_index_and_report_files_are_readable_by_others(tmp_path, umask):
    """What a user sharing an index or a report depends on (mkstemp alone would give 0600)."""
    from fashionrec.index import write_index

    umask(0o022)
    products = pd.DataFrame({"id": pd.array([1, 2], dtype="Int64"), "gender": ["Women", "Men"]})
    write_index(tmp_path / "index", np.zeros((2, 3), np.float32), products,
                {"backbone": "x", "weights": "w", "preprocessing": {}})
    names = ("embeddings.npy", "products.parquet", "manifest.json")  # the documented paths (links into the current generation)
    modes = {name: stat.S_IMODE((tmp_path / "index" / name).stat().st_mode) for name in names}
    assert modes == {"embeddings.npy": 0o644, "products.parquet": 0o644, "manifest.json": 0o644}


def test_json_value_unwraps_numpy_and_pandas_scalars():
    values = {
        "int": np.int64(7), "float": np.float32(0.5), "bool": np.bool_(True), "na": pd.NA, "nan": float("nan"),
        "inf": np.inf, "none": None, "text": "Heels", "list": [1, 2], "nat": pd.NaT, "plain": 3,
    }
    out = {key: json_value(value) for key, value in values.items()}
    assert out == {"int": 7, "float": 0.5, "bool": True, "na": None, "nan": None, "inf": None, "none": None,
                   "text": "Heels", "list": [1, 2], "nat": None, "plain": 3}
    assert type(out["int"]) is int and type(out["bool"]) is bool and not math.isnan(out["float"])
    json.dumps(out, allow_nan=False)  # strict JSON
    assert json_value(pd.Timestamp("2012-01-02")) == "2012-01-02 00:00:00"


def test_writing_never_changes_the_umask(tmp_path, umask):
    """A threaded server must not see the process umask flip while a file is written."""
    from concurrent.futures import ThreadPoolExecutor

    umask(0o027)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: atomic_write(tmp_path / f"f{i}", lambda f: f.write(b"x")), range(64)))
    assert os.umask(0o027) == 0o027
    assert {stat.S_IMODE((tmp_path / f"f{i}").stat().st_mode) for i in range(64)} == {0o640}

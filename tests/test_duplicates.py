"""Near-duplicate groups from range search, on every engine; collapsing duplicates out of a ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashionrec.recommend.duplicates import collapse, duplicate_groups, nearest_distances
from fashionrec.search import create_engine


@pytest.fixture
def catalog_vectors():
    """60 products: ids 100..159; 3 byte-identical copies, a chain of near copies, a close pair, the rest apart."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 16)).astype(np.float32) * 10
    X[[7, 31]] = X[2]  # identical to product 2
    X[20] = X[10] + 0.3  # 10 - 20 - 21: a chain, each link within 1.5, the ends farther
    X[21] = X[20] + 0.3
    X[45] = X[44] + np.float32(0.05)
    ids = np.arange(100, 160, dtype=np.int64)
    attrs = pd.DataFrame({"half": np.where(np.arange(60) < 30, "a", "b")})
    return X, ids, attrs


def brute_pairs(X, ids, threshold, allowed=None):
    X64 = X.astype(np.float64)
    rows = range(len(X)) if allowed is None else np.flatnonzero(allowed)
    out = set()
    for i in rows:
        for j in rows:
            if i < j and np.sqrt(((X64[i] - X64[j]) ** 2).sum()) <= threshold:
                out.add((int(ids[i]), int(ids[j])))
    return out


@pytest.mark.parametrize("name", ["exact", "ivf", "hnsw"])
def test_groups_are_the_connected_components_of_the_threshold_graph(catalog_vectors, name):
    X, ids, attrs = catalog_vectors
    options = {} if name == "exact" else {"reduced_dim": 8, "tune_queries": 10}
    engine = create_engine(name, **options).build(X, ids, attrs)
    scan = duplicate_groups(engine, X, ids, 1.5, block_size=16)
    assert [g.ids for g in scan.groups] == [(102, 107, 131), (110, 120, 121), (144, 145)]
    pairs = {(a, b) for g in scan.groups for a, b, _ in g.pairs}
    assert pairs == brute_pairs(X, ids, 1.5)  # each pair once, only those within the threshold
    assert (110, 121) not in pairs  # the chain's ends are grouped through the middle product
    for group in scan.groups:
        for a, b, d in group.pairs:
            assert d == pytest.approx(float(np.linalg.norm(X[a - 100].astype(np.float64) - X[b - 100])), abs=1e-6)
    assert scan.searched == 60 and scan.products_in_groups == 8


def test_a_selection_is_searched_within_itself(catalog_vectors):
    X, ids, attrs = catalog_vectors
    engine = create_engine("exact").build(X, ids, attrs)
    half = {"half": "a"}
    rows = np.flatnonzero(attrs["half"] == "a")
    scan = duplicate_groups(engine, X, ids, 1.5, rows=rows, filter=half)
    assert [g.ids for g in scan.groups] == [(110, 120, 121), (102, 107)]  # largest first; 131, 144, 145 are in "b"
    assert scan.searched == 30


def test_threshold_zero_finds_identical_vectors_only_and_bad_thresholds_fail(catalog_vectors):
    X, ids, attrs = catalog_vectors
    engine = create_engine("exact").build(X, ids, attrs)
    assert [g.ids for g in duplicate_groups(engine, X, ids, 0.0).groups] == [(102, 107, 131)]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="threshold must be a finite distance"):
            duplicate_groups(engine, X, ids, bad)


def test_nearest_distances_match_a_brute_force(catalog_vectors):
    X, ids, attrs = catalog_vectors
    engine = create_engine("exact").build(X, ids, attrs)
    got = nearest_distances(engine, X, ids, block_size=7)
    X64 = X.astype(np.float64)
    full = np.sqrt(((X64[:, None, :] - X64[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(got, full.min(axis=1), rtol=1e-9, atol=1e-9)
    assert got[2] == got[7] == got[31] == 0.0


def test_collapse_keeps_k_different_looking_results_and_reports_the_collapsed(catalog_vectors):
    X, ids, _ = catalog_vectors
    X64 = X.astype(np.float64)

    def pairwise(a, b):
        return float(np.linalg.norm(X64[a - 100] - X64[b - 100]))

    query = 110
    ranking = sorted((i for i in ids.tolist() if i != query), key=lambda i: (pairwise(query, i), i))
    distances = np.array([pairwise(query, i) for i in ranking])
    kept = collapse(distances, np.array(ranking), pairwise, 1.5, k=5, query_id=query)
    kept_ids = [pid for pid, _, _ in kept]
    assert 120 not in kept_ids  # a copy of the query itself (121 is 2.4 from the query: a result)
    assert len(kept) == 5
    for i, a in enumerate(kept_ids):  # no two kept results within the threshold of each other
        for b in kept_ids[i + 1 :]:
            assert pairwise(a, b) > 1.5
    for pid, _, collapsed in kept:
        assert all(pairwise(pid, other) <= 1.5 for other in collapsed)
    assert kept_ids == [pid for pid, _, _ in collapse(distances, np.array(ranking), pairwise, 1.5, k=60,
                                                       query_id=query)][:5]  # k only cuts the list
    without_query = [pid for pid, _, _ in collapse(distances, np.array(ranking), pairwise, 1.5, k=5)]
    assert without_query[0] == 120 and 121 not in without_query  # no query given: 120 kept, its copy 121 collapsed


def test_duplicates_command_finds_byte_identical_images(make_catalog, tmp_path):
    """The CLI end to end: copied image files under other ids are one group; --out writes CSV and JSON."""
    import json
    import shutil

    from typer.testing import CliRunner

    from fashionrec.catalog import load_catalog
    from fashionrec.cli import app
    from fashionrec.embedding import ImageEmbedder, build_index
    from tiny_backbone import register

    register()
    folder = make_catalog(12, corrupt=0, missing=0)
    catalog = load_catalog(folder)
    images = [folder / rel for rel in catalog.products["image"]]
    ids = catalog.products["id"].tolist()
    shutil.copyfile(images[0], images[5])  # the same picture under a second and a third id
    shutil.copyfile(images[0], images[9])
    build_index(load_catalog(folder), tmp_path / "idx", embedder=ImageEmbedder("tiny-test", runtime="torch"))
    runner = CliRunner()
    result = runner.invoke(app, ["duplicates", str(tmp_path / "idx"), "--threshold", "0", "--json",
                                 "--out", str(tmp_path / "dups")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["groups"] == 1 and report["group_list"][0]["ids"] == sorted([ids[0], ids[5], ids[9]])
    assert json.loads((tmp_path / "dups" / "groups.json").read_text())["group_list"] == report["group_list"]
    rows = (tmp_path / "dups" / "groups.csv").read_text().splitlines()
    assert rows[0] == "group,size,id" and len(rows) == 4
    auto = runner.invoke(app, ["duplicates", str(tmp_path / "idx"), "--auto"], catch_exceptions=False)
    assert auto.exit_code == 0
    assert "median distance of a product to its nearest other product" in " ".join(auto.stdout.split())
    both = runner.invoke(app, ["duplicates", str(tmp_path / "idx"), "--auto", "--threshold", "1"])
    assert both.exit_code != 0 and "not both" in (both.stderr or both.output)


@pytest.mark.parametrize("neighbours", [2, 32])  # 2: products with more twins are searched again by range
def test_auto_groups_equal_range_groups_at_the_threshold_they_pick(catalog_vectors, neighbours):
    from fashionrec.recommend.duplicates import auto_duplicate_groups, auto_threshold

    X, ids, attrs = catalog_vectors
    engine = create_engine("exact").build(X, ids, attrs)
    scan = auto_duplicate_groups(engine, X, ids, neighbours=neighbours, block_size=16)
    threshold, why = auto_threshold(nearest_distances(engine, X, ids))
    assert scan.threshold == threshold and scan.notes["threshold"] == why
    reference = duplicate_groups(engine, X, ids, threshold)
    assert [g.ids for g in scan.groups] == [g.ids for g in reference.groups]
    assert [g.pairs for g in scan.groups] == [g.pairs for g in reference.groups]

"""Search engines against a plain NumPy float64 brute force, ties included.

Two parts: the exact scanning kernel (:class:`ExactScan`, row positions: float
precision edge cases), then the conformance checks every registered engine must
pass (ids, filters, exclusions by id, padding, range search, add, save/load,
threads), the way scikit-learn's common checks run over every estimator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashionrec.errors import IndexFolderError, UnknownMetricError
from fashionrec.search import ExactScan, id_tie_order


def reference(X, Q, k, metric, allowed=None, exclude=None, tie=None):
    """Independent brute force: float64 distances, sorted by (distance, tie rank)."""
    X64 = np.asarray(X, dtype=np.float64)
    Q64 = np.atleast_2d(np.asarray(Q, dtype=np.float64))
    n = len(X64)
    tie = np.arange(n) if tie is None else np.asarray(tie)
    out_d = np.full((len(Q64), k), np.inf)
    out_i = np.full((len(Q64), k), -1)
    for qi, q in enumerate(Q64):
        if metric == "euclidean":
            d = np.sqrt(((X64 - q) ** 2).sum(axis=1))
        else:
            nx, nq = np.linalg.norm(X64, axis=1), np.linalg.norm(q)
            sim = np.array([(x @ q) / (a * nq) if a * nq > 0 else 0.0 for x, a in zip(X64, nx)])
            d = 1.0 - sim
        ok = np.ones(n, bool) if allowed is None else allowed.copy()
        if exclude is not None:
            ok[list(exclude[qi])] = False
        rows = np.flatnonzero(ok)
        order = rows[np.lexsort((tie[rows], d[rows]))][:k]
        out_d[qi, : len(order)] = d[order]
        out_i[qi, : len(order)] = order
    return out_d, out_i


@pytest.fixture
def vectors():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 24)).astype(np.float32)
    X[10] = X[3]  # exact duplicates -> distance ties
    X[200] = X[3]
    X[50] = X[60] * 2  # same direction: a cosine tie
    return X


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_matches_brute_force_with_ties(vectors, metric):
    queries = vectors[[3, 5, 60]] + np.float32(0.0)
    index = ExactScan(metric).fit(vectors)
    d, i = index.search(queries, 12)
    rd, ri = reference(vectors, queries, 12, metric)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=1e-12, atol=1e-12)
    assert list(i[0, :3]) == [3, 10, 200]  # the three identical vectors, lower row first
    assert d[0, 0] == d[0, 1] == d[0, 2] == pytest.approx(0.0, abs=1e-6)
    if metric == "cosine":
        assert set(i[2, :2]) == {50, 60}


def test_tie_order_resolves_ties(vectors):
    tie = np.arange(len(vectors))[::-1].copy()  # reversed: higher row wins ties
    d, i = ExactScan("euclidean", tie_order=tie).fit(vectors).search(vectors[3], 3)
    assert list(i[0]) == [200, 10, 3]


def test_tie_cut_by_k_is_exact():
    X = np.ones((20, 8), dtype=np.float32)  # all equidistant
    tie = id_tie_order(np.array([50, 3, 99, 7, 12, 1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54]))
    d, i = ExactScan("euclidean", tie_order=tie).fit(X).search(np.zeros(8, np.float32), 3)
    assert list(i[0]) == [5, 1, 3]  # ids 1, 3, 7


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("gather", [0.0, 1.0])  # mask the full scan / gather the allowed rows
def test_filter_and_exclude(vectors, metric, gather):
    rng = np.random.default_rng(1)
    allowed = rng.random(len(vectors)) < 0.3
    allowed[[3, 10]] = True
    queries = vectors[[3, 7]]
    exclude = [[3], [7, 10]]
    index = ExactScan(metric, gather_fraction=gather).fit(vectors)
    d, i = index.search(queries, 9, allowed=allowed, exclude=exclude)
    rd, ri = reference(vectors, queries, 9, metric, allowed=allowed, exclude=exclude)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=1e-12, atol=1e-12)
    assert allowed[i[i >= 0]].all()
    assert 3 not in i[0] and 10 in i[0]  # excluded by row, its duplicate kept
    assert 7 not in i[1] and 10 not in i[1]


def test_padding_and_k_edges(vectors):
    index = ExactScan().fit(vectors)
    allowed = np.zeros(len(vectors), bool)
    allowed[[1, 2, 3]] = True
    d, i = index.search(vectors[1], 5, allowed=allowed, exclude=[[1]])
    assert list(i[0, 2:]) == [-1, -1, -1] and np.isinf(d[0, 2:]).all()
    assert sorted(i[0, :2]) == [2, 3]
    d, i = index.search(vectors[1], 2, allowed=allowed, exclude=[[1]])  # k == candidates
    assert (i >= 0).all()
    d, i = index.search(vectors[:2], 3, allowed=np.zeros(len(vectors), bool))  # nothing allowed
    assert (i == -1).all() and np.isinf(d).all()
    d, i = index.search(vectors[0], len(vectors) + 5)  # k > N: capped to N columns
    assert i.shape == d.shape == (1, len(vectors)) and (i >= 0).all()
    d, i = index.search(vectors[0], 10**12, exclude=[[0]])  # capped before allocating
    assert i.shape == (1, len(vectors)) and (i[0, :-1] >= 0).all() and i[0, -1] == -1
    d, i = ExactScan().fit(np.zeros((0, 24), np.float32)).search(vectors[:2], 3)  # nothing held
    assert i.shape == d.shape == (2, 0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(vectors[0], 0)
    with pytest.raises(ValueError, match=r"shape \(Q, 24\)"):
        index.search(np.zeros((1, 5), np.float32), 3)


def test_batched_equals_single(vectors):
    index = ExactScan("euclidean", block_size=16).fit(vectors)
    queries = vectors[:40]
    excl = [[r] for r in range(40)]
    d, i = index.search(queries, 7, exclude=excl)
    for r in (0, 17, 39):
        ds, is_ = index.search(queries[r], 7, exclude=[[r]])
        np.testing.assert_array_equal(is_[0], i[r])
        np.testing.assert_array_equal(ds[0], d[r])


def test_float32_cancellation_is_reranked_exactly():
    """Large offset, tiny differences: ||q||^2 - 2q.x + ||x||^2 in float32 is noise here."""
    rng = np.random.default_rng(3)
    X = (1000.0 + rng.normal(scale=1e-2, size=(200, 64))).astype(np.float32)
    q = X[0] + np.float32(1e-3)
    d, i = ExactScan("euclidean").fit(X).search(q, 10)
    rd, ri = reference(X, q, 10, "euclidean")
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("query_scale", [1e-3, 1.0, 1e4])
def test_near_collinear_vectors_any_scale(metric, query_scale):
    """Directions differing in the 5th digit, norms over 6 orders of magnitude: the float32
    candidate margin must scale with the query and the vectors, whatever their size."""
    rng = np.random.default_rng(11)
    base = rng.normal(size=48)
    X = (base + rng.normal(scale=1e-5, size=(400, 48))) * rng.uniform(1e-2, 1e4, size=(400, 1))
    X = X.astype(np.float32)
    Q = (X[[0, 123]] * query_scale).astype(np.float32)
    index = ExactScan(metric).fit(X)
    for one in (False, True):  # the single-query path and the batched one
        d, i = index.search(Q[:1] if one else Q, 15, exclude=[[0]] if one else [[0], [123]])
        rd, ri = reference(X, Q[:1] if one else Q, 15, metric, exclude=[[0]] if one else [[0], [123]])
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_allclose(d, rd, rtol=1e-9, atol=1e-12)


def test_cosine_zero_vector():
    X = np.array([[0, 0], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    d, i = ExactScan("cosine").fit(X).search(np.array([1, 0.1], np.float32), 4)
    assert list(i[0]) == [1, 2, 0, 3]
    np.testing.assert_allclose(d[0, 2], 1.0)  # zero vector: similarity 0
    d, i = ExactScan("cosine").fit(X).search(np.zeros(2, np.float32), 2)
    np.testing.assert_allclose(d[0], [1.0, 1.0])
    assert list(i[0]) == [0, 1]


def test_memmap_is_not_copied(tmp_path, vectors):
    np.save(tmp_path / "v.npy", vectors)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    index = ExactScan().fit(mm)
    assert np.shares_memory(index._vectors, mm)
    d, i = index.search(mm[4], 5)  # read-only memory map scanned in place
    rd, ri = reference(vectors, vectors[4], 5, "euclidean")
    np.testing.assert_array_equal(i, ri)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blas_fallback_without_faiss(vectors, monkeypatch, metric):
    import fashionrec.search.exact as search

    monkeypatch.setattr(search, "_faiss_module", False)
    allowed = np.arange(len(vectors)) % 5 == 0
    for kwargs in ({}, {"allowed": allowed}):
        d, i = ExactScan(metric).fit(vectors).search(vectors[3], 6, **kwargs)
        rd, ri = reference(vectors, vectors[3], 6, metric, allowed=kwargs.get("allowed"))
        np.testing.assert_array_equal(i, ri)
    with pytest.raises(UnknownMetricError, match="unknown metric 'manhattan'; expected one of euclidean, cosine"):
        ExactScan("manhattan")


def test_many_tied_candidates_are_reranked_in_chunks():
    X = np.ones((5000, 4), dtype=np.float32)
    X[4321] = 0.5  # the one nearer vector
    d, i = ExactScan("euclidean").fit(X).search(np.zeros(4, np.float32), 3)
    assert list(i[0]) == [4321, 0, 1]
    np.testing.assert_allclose(d[0], [1.0, 2.0, 2.0])


def test_scan_range_search_matches_brute_force(vectors):
    for metric, radius in (("euclidean", 6.0), ("cosine", 0.6)):
        scan = ExactScan(metric).fit(vectors)
        lims, dist, rows = scan.range_search(vectors[[3, 60]], radius, exclude=[[3], []])
        rd, ri = reference(vectors, vectors[[3, 60]], len(vectors), metric, exclude=[[3], []])
        for q in range(2):
            inside = rd[q] <= radius
            np.testing.assert_array_equal(rows[lims[q] : lims[q + 1]], ri[q][inside])
            np.testing.assert_allclose(dist[lims[q] : lims[q + 1]], rd[q][inside], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- conformance of every engine

from fashionrec.catalog.filters import Filter  # noqa: E402
from fashionrec.errors import FilterError, InvalidKError, UnknownEngineError  # noqa: E402
from fashionrec.search import ApproximateEngine, create_engine, engine_class, list_engines, load_engine  # noqa: E402

SERVER_VARIANTS = {"milvus": ("FLAT", "HNSW")}
"""Engines on a server run the checks once per index type: FLAT answers exactly, HNSW with a recall floor."""
ENGINES = [f"{name}:{kind}" if name in SERVER_VARIANTS else name
           for name in list_engines() for kind in SERVER_VARIANTS.get(name, (None,))]
N, D = 240, 16


def registered(name: str) -> str:
    """The registry name of an engine parameter (``milvus:FLAT`` -> ``milvus``)."""
    return name.split(":")[0]


@pytest.fixture(autouse=True)
def _engine_server(request):
    """Start the session's Milvus server (conftest) for the checks of engines kept on one; others need none."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    if registered(str(params.get("name", ""))) in SERVER_VARIANTS:
        request.getfixturevalue("milvus_server")


@pytest.fixture(scope="module")
def data():
    """Vectors with exact duplicates, ids that are neither positions nor sorted, and attributes."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, D)).astype(np.float32)
    X[[17, 90, 151]] = X[40]  # four identical vectors: distance ties resolved by id
    X[33] = X[8] * 3  # same direction: a cosine tie
    ids = rng.choice(1_000_000, size=N, replace=False).astype(np.int64)
    attrs = pd.DataFrame({
        "gender": rng.choice(["Women", "Men", None], size=N, p=[0.45, 0.45, 0.1]),
        "articleType": rng.choice(["Heels", "Flats", "Sandals"], size=N),
        "year": pd.array(rng.choice([2011, 2012], size=N), dtype="Int64"),
    })
    return X, ids, attrs


def brute(X, ids, attrs, Q, metric, *, where=None, exclude_ids=None):
    """Every eligible vector per query, sorted by (float64 distance, id): lists of (distances, ids)."""
    X64 = X.astype(np.float64)
    ok = np.ones(len(X), bool) if where is None else Filter.from_where(where).mask(attrs)
    out = []
    for qi, q in enumerate(np.atleast_2d(Q).astype(np.float64)):
        if metric == "euclidean":
            d = np.sqrt(((X64 - q) ** 2).sum(axis=1))
        else:
            den = np.linalg.norm(X64, axis=1) * np.linalg.norm(q)
            d = 1.0 - np.where(den > 0, X64 @ q / np.where(den > 0, den, 1), 0.0)
        mask = ok & ~np.isin(ids, list(exclude_ids[qi]) if exclude_ids else [])
        rows = np.flatnonzero(mask)
        order = rows[np.lexsort((ids[rows], d[rows]))]
        out.append((d[order], ids[order]))
    return out


def options(name, metric="euclidean", tag="main") -> dict:
    """Engine options for the 240-vector test data: approximate engines fetch few candidates, so that their
    approximate path runs (with their defaults, 240 vectors are few enough to be scanned exactly). A server
    engine gets its index type and a collection per metric and data set (``tag``), reused by the checks that
    build the same data (a push of what a collection holds already sends nothing; one that holds more or less
    sends only the difference)."""
    if registered(name) in SERVER_VARIANTS:
        kind = name.split(":")[1]
        return {"index_type": kind, "collection": f"conformance_{kind}_{metric}_{tag}", "min_candidates": 10,
                "rerank": 1, "tune_queries": 20}
    return {} if engine_class(name).exact_answers else {"min_candidates": 20, "rerank": 2, "tune_queries": 40}


def build(name, metric, data):
    X, ids, attrs = data
    return create_engine(registered(name), metric=metric, **options(name, metric)).build(X, ids, attrs)


MIN_RECALL = 0.8
"""Least recall an approximate engine must reach on the test data (it is tuned for 0.95)."""


def assert_top_k(engine_result, expected, k, exact=True):
    """``exact``: the results are the brute-force ones, ties by id. Otherwise every result is an eligible vector
    at its exact distance, sorted (ties by id), padding only at the end, and recall is at least MIN_RECALL."""
    dist, found = engine_result
    hits, wanted = 0, 0
    for q, (ed, ei) in enumerate(expected):
        n = min(k, len(ei))
        if exact:
            np.testing.assert_array_equal(found[q, :n], ei[:n])
            np.testing.assert_allclose(dist[q, :n], ed[:n], rtol=1e-9, atol=1e-9)
            assert (found[q, n:] == -1).all() and np.isinf(dist[q, n:]).all()
            continue
        got = found[q][found[q] >= 0]
        assert (found[q, len(got):] == -1).all() and np.isinf(dist[q, len(got):]).all()
        true_distance = dict(zip(ei.tolist(), ed.tolist()))
        assert set(got.tolist()) <= set(true_distance)  # eligible: filter and exclusions respected
        np.testing.assert_allclose(dist[q, : len(got)], [true_distance[i] for i in got.tolist()], rtol=1e-9,
                                   atol=1e-9)  # never a misstated distance
        order = np.lexsort((got, dist[q, : len(got)]))
        np.testing.assert_array_equal(order, np.arange(len(got)))  # sorted, ties by id
        hits += len(set(got.tolist()) & set(ei[:n].tolist()))
        wanted += n
    if not exact and wanted:
        assert hits / wanted >= MIN_RECALL, f"recall {hits / wanted:.3f}"


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_engine_search_matches_brute_force_ties_by_id(name, metric, data):
    X, ids, attrs = data
    engine = build(name, metric, data)
    assert engine.ntotal == N and engine.dim == D and engine.metric == metric
    Q = X[[40, 8, 5]]
    result = engine.search(Q, 12)
    assert result[0].shape == result[1].shape == (3, 12)
    assert result[0].dtype == np.float64 and result[1].dtype == np.int64
    assert_top_k(result, brute(X, ids, attrs, Q, metric), 12, engine.exact_answers)
    tied = sorted(ids[[17, 40, 90, 151]])
    found_tied = [i for i in result[1][0, :4] if i in tied]
    assert found_tied == sorted(found_tied) and len(found_tied) >= (4 if engine.exact_answers else 3)
    single = engine.search(X[40], 4)  # a (D,) query is one query
    np.testing.assert_array_equal(single[1][0], result[1][0, :4])


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_engine_filter_and_exclude_by_id(name, metric, data):
    X, ids, attrs = data
    engine = build(name, metric, data)
    Q = X[[40, 5]]
    exclude = [[ids[40], 999_999_999], [ids[5], ids[90]]]  # unknown ids are ignored
    for where in ({"gender": "women"}, {"articleType": ["Heels", "FLATS"], "year": 2012},
                  Filter.from_where({"gender": ["Men", "Women"]})):
        result = engine.search(Q, 9, filter=where, exclude_ids=exclude)
        expected = brute(X, ids, attrs, Q, metric, where=where, exclude_ids=exclude)
        assert_top_k(result, expected, 9, engine.exact_answers)
        allowed = set(ids[Filter.from_where(where).mask(attrs)])
        found = result[1][result[1] >= 0]
        assert set(found.tolist()) <= allowed
        assert ids[40] not in result[1][0] and ids[5] not in result[1][1] and ids[90] not in result[1][1]


@pytest.mark.parametrize("name", ENGINES)
def test_engine_k_beyond_candidates_and_empty_filter(name, data):
    X, ids, attrs = data
    engine = build(name, "euclidean", data)
    few = {"gender": "Women", "articleType": "Sandals", "year": 2011}
    n_few = int(Filter.from_where(few).mask(attrs).sum())
    assert 0 < n_few < 40
    result = engine.search(X[:2], n_few + 5, filter=few)
    assert_top_k(result, brute(X, ids, attrs, X[:2], "euclidean", where=few), n_few + 5)  # few: scanned exactly
    assert (result[1][:, n_few:] == -1).all()
    dist, found = engine.search(X[:2], 3, filter={"articleType": "Boots"})  # matches nothing
    assert (found == -1).all() and np.isinf(dist).all()
    # k > N: k is capped to N, so the results have N columns; padding only where filters or
    # exclusions leave fewer than N candidates.
    dist, found = engine.search(X[0], N + 10)
    assert found.shape == dist.shape == (1, N)
    assert sorted(found[0].tolist()) == sorted(ids.tolist()) and np.isfinite(dist).all()
    dist, found = engine.search(X[:2], N + 10, exclude_ids=[[ids[0]], [ids[1], ids[2]]])
    assert found.shape == (2, N)
    assert (found[0, : N - 1] >= 0).all() and list(found[0, N - 1 :]) == [-1]
    assert (found[1, : N - 2] >= 0).all() and list(found[1, N - 2 :]) == [-1, -1]
    result = engine.search(X[:2], N + 10, filter=few)
    assert result[1].shape == (2, N) and (result[1][:, n_few:] == -1).all()


@pytest.mark.parametrize("name", ENGINES)
def test_engine_huge_k_costs_no_more_than_n(name, data):
    """A k far beyond N (the CLI has no upper bound) returns N results without allocating k of anything."""
    import time
    import tracemalloc

    X, ids, attrs = data
    engine = build(name, "euclidean", data)
    engine.search(X[:3], N)  # warm up (lazy imports, caches)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        dist, found = engine.search(X[:3], 10**11, exclude_ids=[[ids[0]], [], []])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 2_000_000  # bytes; k = 10**11 columns would be 800 GB per query
    assert found.shape == dist.shape == (3, N)
    assert list(found[0, N - 1 :]) == [-1] and (found[1:] >= 0).all()
    np.testing.assert_array_equal(found[1:], engine.search(X[1:3], N)[1])


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("metric,radius", [("euclidean", 4.5), ("cosine", 0.5)])
def test_engine_range_search(name, metric, radius, data):
    X, ids, attrs = data
    engine = build(name, metric, data)
    Q = X[[40, 8, 5]]
    exclude = [[ids[40]], [], [ids[5]]]
    for where in (None, {"gender": "Women"}):
        result = engine.range_search(Q, radius, filter=where, exclude_ids=exclude)
        assert result.lims.shape == (4,) and result.lims[0] == 0
        hits = wanted = 0
        for q, (ed, ei) in enumerate(brute(X, ids, attrs, Q, metric, where=where, exclude_ids=exclude)):
            d, found = result.neighbours(q)
            inside = ed <= radius
            if engine.exact_answers:
                np.testing.assert_array_equal(found, ei[inside])
                np.testing.assert_allclose(d, ed[inside], rtol=1e-9, atol=1e-9)
            else:  # a subset of the true neighbours, at their exact distances, sorted
                true_distance = dict(zip(ei.tolist(), ed.tolist()))
                assert set(found.tolist()) <= set(ei[inside].tolist())
                np.testing.assert_allclose(d, [true_distance[i] for i in found.tolist()], rtol=1e-9, atol=1e-9)
                np.testing.assert_array_equal(np.lexsort((found, d)), np.arange(len(found)))
                hits, wanted = hits + len(found), wanted + int(inside.sum())
        assert hits >= MIN_RECALL * wanted
    zero = engine.range_search(X[40], 0.0, exclude_ids=[[ids[40]]])  # radius 0: exact duplicates only
    assert list(zero.neighbours(0)[1]) == sorted(ids[[17, 90, 151]])
    assert engine.range_search(X[:2], 0.0, filter={"articleType": "Boots"}).lims.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="radius"):
        engine.range_search(X[0], -1.0)


@pytest.mark.parametrize("name", ENGINES)
def test_engine_add_equals_build(name, data):
    X, ids, attrs = data
    whole = build(name, "euclidean", data)
    grown = create_engine(registered(name), metric="euclidean", **options(name)).build(X[:100], ids[:100], attrs[:100])
    grown.add(X[100:], ids[100:], attrs[100:].reset_index(drop=True))
    assert grown.ntotal == N
    for kwargs in ({}, {"filter": {"gender": "Men"}, "exclude_ids": [[ids[7]], [ids[200]]]}):
        a, b = whole.search(X[[7, 200]], 10, **kwargs), grown.search(X[[7, 200]], 10, **kwargs)
        if whole.exact_answers:
            np.testing.assert_array_equal(a[1], b[1])
            np.testing.assert_array_equal(a[0], b[0])
        else:  # trained on other vectors: another approximation, as good
            where, exclude = kwargs.get("filter"), kwargs.get("exclude_ids")
            assert_top_k(b, brute(X, ids, attrs, X[[7, 200]], "euclidean", where=where, exclude_ids=exclude), 10,
                         exact=False)
    with pytest.raises(ValueError, match="already"):
        grown.add(X[:1], ids[:1], attrs[:1])


@pytest.mark.parametrize("name", ENGINES)
def test_engine_save_and_load(name, data, tmp_path):
    X, ids, attrs = data
    engine = build(name, "cosine", data)
    folder = engine.save(tmp_path / "index" / "engines" / name)
    assert folder.is_dir() and any(folder.iterdir())
    again = load_engine(registered(name), folder, X, ids, attrs)
    assert type(again) is type(engine) and again.params() == engine.params()
    for kwargs in ({}, {"filter": {"gender": "Women"}}):
        np.testing.assert_array_equal(engine.search(X[:5], 8, **kwargs)[1], again.search(X[:5], 8, **kwargs)[1])


@pytest.mark.parametrize("name", ENGINES)
def test_engine_rejects_bad_input(name, data):
    X, ids, attrs = data
    engine = build(name, "euclidean", data)
    with pytest.raises(InvalidKError, match="k must be at least 1, got 0"):
        engine.search(X[0], 0)
    with pytest.raises(ValueError, match=r"shape \(Q, 16\)"):
        engine.search(np.zeros((1, 5), np.float32), 3)
    with pytest.raises(FilterError, match="unknown attribute 'colour'"):
        engine.search(X[0], 3, filter={"colour": "Red"})
    with pytest.raises(ValueError, match="distinct"):
        create_engine(registered(name)).build(X[:3], [1, 1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        create_engine(registered(name)).build(X[:3], [1, -1, 2])
    bare = create_engine(registered(name), **options(name, tag="bare")).build(X, ids)  # no attributes: no filtering
    with pytest.raises(FilterError, match="without attributes"):
        bare.search(X[0], 3, filter={"gender": "Men"})


@pytest.mark.parametrize("name", ENGINES)
def test_engine_threads_give_the_serial_answers(name, data):
    from concurrent.futures import ThreadPoolExecutor

    X, ids, attrs = data
    engine = build(name, "euclidean", data)
    filters = [None, {"gender": "Women"}, {"articleType": ["Heels", "Flats"]}, {"gender": "Men", "year": 2011}]
    calls = [(i, filters[i % len(filters)]) for i in range(120)]
    serial = [engine.search(X[i], 6, filter=f, exclude_ids=[[ids[i]]]) for i, f in calls]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda c: engine.search(X[c[0]], 6, filter=c[1], exclude_ids=[[ids[c[0]]]]), calls))
    for (sd, si), (td, ti) in zip(serial, threaded):
        np.testing.assert_array_equal(si, ti)
        np.testing.assert_array_equal(sd, td)


def test_registry():
    assert "exact" in ENGINES
    assert engine_class("exact").name == "exact"
    with pytest.raises(UnknownEngineError, match="unknown search engine 'annoy'; expected one of exact"):
        create_engine("annoy")


# --------------------------------------------------------------------------- approximate engines at a larger size

APPROXIMATE = [name for name in ENGINES if issubclass(engine_class(registered(name)), ApproximateEngine)]


@pytest.fixture(scope="module")
def clustered():
    """4,000 vectors in 80 clusters (like products of a few kinds), with a 10 %-of-products attribute."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(80, 32)).astype(np.float32)
    X = (centres[rng.integers(0, 80, 4000)] + 0.35 * rng.normal(size=(4000, 32))).astype(np.float32)
    ids = rng.choice(10**6, size=4000, replace=False).astype(np.int64)
    attrs = pd.DataFrame({"rare": np.where(rng.random(4000) < 0.06, "yes", "no"),
                          "half": np.where(rng.random(4000) < 0.5, "a", "b")})
    return X, ids, attrs


def recall(found, truth):
    return float(np.mean([len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum()))
                          for f, t in zip(found, truth)]))


@pytest.mark.parametrize("name", APPROXIMATE)
def test_approximate_engine_measures_and_reaches_its_target_recall(name, clustered):
    X, ids, attrs = clustered
    engine = create_engine(name, reduced_dim=16, tune_queries=200).build(X, ids, attrs)
    tuning = engine.tuning
    assert tuning["reached"] and tuning["recall_low"] >= 0.95 == tuning["target_recall"]
    assert tuning["recall"] > tuning["recall_low"]  # a lower confidence bound, below the measured mean
    assert tuning["queries"] == 200 and tuning["param"] == engine.search_param
    values = [point[engine.search_param] for point in tuning["curve"]]
    assert values == sorted(values) and values[-1] == tuning["value"]  # smallest value reaching the target
    assert all(point["recall_low"] < 0.95 for point in tuning["curve"][:-1])  # smaller values: not sure enough
    # on other queries (every 10th product), recall stays near the measured one
    rows = np.arange(0, 4000, 10)
    exact = create_engine("exact").build(X, ids, attrs)
    own = [[int(i)] for i in ids[rows]]
    truth = exact.search(X[rows], 10, exclude_ids=own)
    found = engine.search(X[rows], 10, exclude_ids=own)
    assert recall(found[1], truth[1]) >= 0.9
    # every result at its exact distance, sorted, ties by id (checked on 50 queries against the brute force)
    assert_top_k((found[0][:50], found[1][:50]), brute(X, ids, attrs, X[rows[:50]], "euclidean",
                                                       exclude_ids=own[:50]), 10, exact=False)
    assert engine.build_info["vectors"] == 4000 and engine.build_info["seconds"] > 0


@pytest.mark.parametrize("name", APPROXIMATE)
def test_filters_at_or_below_the_cutover_are_answered_exactly(name, clustered):
    X, ids, attrs = clustered
    engine = create_engine(name, reduced_dim=16, tune_queries=100, exact_below=300).build(X, ids, attrs)
    exact = create_engine("exact").build(X, ids, attrs)
    rows = np.arange(0, 4000, 40)
    rare = {"rare": "yes"}  # about 240 products: scanned exactly
    assert 0 < Filter.from_where(rare).mask(attrs).sum() <= 300
    a, b = engine.search(X[rows], 10, filter=rare), exact.search(X[rows], 10, filter=rare)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    half = {"half": "a"}  # about 2,000: through the FAISS index with a selector, widened
    found, truth = engine.search(X[rows], 10, filter=half)[1], exact.search(X[rows], 10, filter=half)[1]
    assert recall(found, truth) >= 0.9
    assert set(found[found >= 0].tolist()) <= set(ids[Filter.from_where(half).mask(attrs)].tolist())


@pytest.mark.parametrize("name", APPROXIMATE)
def test_an_updated_engine_equals_its_vectors_and_is_measured_again(name, clustered, tmp_path):
    X, ids, attrs = clustered
    first = create_engine(name, reduced_dim=16, tune_queries=100).build(X[:3000], ids[:3000], attrs[:3000])
    first.save(tmp_path / "engine")
    keep = np.r_[50:4000]  # 50 removed, 1,000 added, 20 changed
    X2, ids2, attrs2 = X[keep].copy(), ids[keep], attrs.iloc[keep].reset_index(drop=True)
    X2[:20] += 0.05
    engine = engine_class(name).open_for_update(tmp_path / "engine")
    action = engine.update(X2, ids2, attrs2)
    if name == "hnsw":
        assert action == "rebuilt (this index cannot remove vectors)"
    else:
        assert action == "updated (+1020 added, -70 removed)"
    assert engine.ntotal == len(ids2) and engine.tuning["recall"] >= 0.95
    exact = create_engine("exact").build(X2, ids2, attrs2)
    rows = np.arange(0, len(ids2), 25)
    found = engine.search(X2[rows], 10)[1]
    assert not set(found.ravel().tolist()) & set(ids[:50].tolist())  # removed ids never come back
    assert recall(found, exact.search(X2[rows], 10)[1]) >= 0.9
    engine.save(tmp_path / "engine")
    again = engine_class(name).load(tmp_path / "engine", X2, ids2, attrs2)
    np.testing.assert_array_equal(again.search(X2[rows], 10)[1], found)
    with pytest.raises(IndexFolderError, match="built over other vectors"):
        engine_class(name).load(tmp_path / "engine", X, ids, attrs)


def test_ivf_is_trained_again_when_the_data_doubles(clustered, tmp_path):
    X, ids, attrs = clustered
    create_engine("ivf", reduced_dim=16, tune_queries=50).build(X[:1500], ids[:1500]).save(tmp_path / "engine")
    engine = engine_class("ivf").open_for_update(tmp_path / "engine")
    assert engine.update(X, ids) == "rebuilt (4000 vectors, trained for 1500)"


def test_faiss_runs_the_blas_core_numpy_detected():
    """FAISS's bundled OpenBLAS may detect a generic core on new CPUs; fashionrec sets the one NumPy's detected."""
    import subprocess
    import sys

    from fashionrec.search.faiss_setup import _coretype_for_faiss

    expected = _coretype_for_faiss()
    if expected is None:
        pytest.skip("NumPy's BLAS core has no counterpart in FAISS's OpenBLAS here")
    script = ("import json; from fashionrec.search.faiss_setup import import_faiss, kernel_report; "
              "import_faiss(); print(json.dumps(kernel_report()))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_CORETYPE"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    report = __import__("json").loads(done.stdout)
    assert report["faiss_blas"].endswith(f"({expected})"), report
    assert "AVX2" in report["faiss_simd"] or "NEON" in report["faiss_simd"] or "GENERIC" in report["faiss_simd"]


def test_ivf_finds_a_filtered_category_that_lies_far_from_the_query():
    """A filter of one kind of product (a shoe's nearest T-shirts): its vectors lie in other lists than the query's.

    ivf visits the query's nearest lists until they hold as many of the filter's vectors as an unfiltered
    search scans, rather than a fixed 1/fraction times more lists (which only works for filters of products
    spread evenly, as random ones are).
    """
    rng = np.random.default_rng(5)
    kinds = rng.normal(size=(20, 32)) * 10  # 20 kinds far apart (5 % of the products each) ...
    styles = kinds[np.arange(200) % 20] + rng.normal(size=(200, 32)) * 2  # ... of 10 styles each
    cluster = rng.integers(0, 200, 20000)
    X = (styles[cluster] + 0.5 * rng.normal(size=(20000, 32))).astype(np.float32)
    ids = np.arange(20000, dtype=np.int64)
    attrs = pd.DataFrame({"kind": [f"k{c % 20}" for c in cluster]})
    engine = create_engine("ivf", reduced_dim=32, tune_queries=100, exact_below=0).build(X, ids, attrs)
    exact = create_engine("exact").build(X, ids, attrs)
    rows = np.flatnonzero(attrs["kind"] != "k3")[::200]  # queries of other kinds
    where = {"kind": "k3"}
    found = engine.search(X[rows], 10, filter=where, exclude_ids=[[int(i)] for i in rows])[1]
    truth = exact.search(X[rows], 10, filter=where, exclude_ids=[[int(i)] for i in rows])[1]
    assert recall(found, truth) >= 0.9
    assert set(found[found >= 0].tolist()) <= set(np.flatnonzero(attrs["kind"] == "k3").tolist())

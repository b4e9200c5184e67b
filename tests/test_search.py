"""ExactIndex against a plain NumPy float64 brute force, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from fashionrec.search import ExactIndex, VectorIndex, id_tie_order


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
    index = ExactIndex(metric).fit(vectors)
    assert isinstance(index, VectorIndex)
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
    d, i = ExactIndex("euclidean", tie_order=tie).fit(vectors).search(vectors[3], 3)
    assert list(i[0]) == [200, 10, 3]


def test_tie_cut_by_k_is_exact():
    X = np.ones((20, 8), dtype=np.float32)  # all equidistant
    tie = id_tie_order(np.array([50, 3, 99, 7, 12, 1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54]))
    d, i = ExactIndex("euclidean", tie_order=tie).fit(X).search(np.zeros(8, np.float32), 3)
    assert list(i[0]) == [5, 1, 3]  # ids 1, 3, 7


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("gather", [0.0, 1.0])  # mask the full scan / gather the allowed rows
def test_filter_and_exclude(vectors, metric, gather):
    rng = np.random.default_rng(1)
    allowed = rng.random(len(vectors)) < 0.3
    allowed[[3, 10]] = True
    queries = vectors[[3, 7]]
    exclude = [[3], [7, 10]]
    index = ExactIndex(metric, gather_fraction=gather).fit(vectors)
    d, i = index.search(queries, 9, allowed=allowed, exclude=exclude)
    rd, ri = reference(vectors, queries, 9, metric, allowed=allowed, exclude=exclude)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(d, rd, rtol=1e-12, atol=1e-12)
    assert allowed[i[i >= 0]].all()
    assert 3 not in i[0] and 10 in i[0]  # excluded by row, its duplicate kept
    assert 7 not in i[1] and 10 not in i[1]


def test_padding_and_k_edges(vectors):
    index = ExactIndex().fit(vectors)
    allowed = np.zeros(len(vectors), bool)
    allowed[[1, 2, 3]] = True
    d, i = index.search(vectors[1], 5, allowed=allowed, exclude=[[1]])
    assert list(i[0, 2:]) == [-1, -1, -1] and np.isinf(d[0, 2:]).all()
    assert sorted(i[0, :2]) == [2, 3]
    d, i = index.search(vectors[1], 2, allowed=allowed, exclude=[[1]])  # k == candidates
    assert (i >= 0).all()
    d, i = index.search(vectors[:2], 3, allowed=np.zeros(len(vectors), bool))  # nothing allowed
    assert (i == -1).all() and np.isinf(d).all()
    d, i = index.search(vectors[0], len(vectors) + 5)  # k > N
    assert (i[0, : len(vectors)] >= 0).all() and (i[0, len(vectors) :] == -1).all()
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(vectors[0], 0)
    with pytest.raises(ValueError, match=r"shape \(Q, 24\)"):
        index.search(np.zeros((1, 5), np.float32), 3)


def test_batched_equals_single(vectors):
    index = ExactIndex("euclidean", block_size=16).fit(vectors)
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
    d, i = ExactIndex("euclidean").fit(X).search(q, 10)
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
    index = ExactIndex(metric).fit(X)
    for one in (False, True):  # the single-query path and the batched one
        d, i = index.search(Q[:1] if one else Q, 15, exclude=[[0]] if one else [[0], [123]])
        rd, ri = reference(X, Q[:1] if one else Q, 15, metric, exclude=[[0]] if one else [[0], [123]])
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_allclose(d, rd, rtol=1e-9, atol=1e-12)


def test_cosine_zero_vector():
    X = np.array([[0, 0], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    d, i = ExactIndex("cosine").fit(X).search(np.array([1, 0.1], np.float32), 4)
    assert list(i[0]) == [1, 2, 0, 3]
    np.testing.assert_allclose(d[0, 2], 1.0)  # zero vector: similarity 0
    d, i = ExactIndex("cosine").fit(X).search(np.zeros(2, np.float32), 2)
    np.testing.assert_allclose(d[0], [1.0, 1.0])
    assert list(i[0]) == [0, 1]


def test_memmap_is_not_copied(tmp_path, vectors):
    np.save(tmp_path / "v.npy", vectors)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    index = ExactIndex().fit(mm)
    assert np.shares_memory(index._vectors, mm)
    d, i = index.search(mm[4], 5)  # read-only memory map scanned in place
    rd, ri = reference(vectors, vectors[4], 5, "euclidean")
    np.testing.assert_array_equal(i, ri)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blas_fallback_without_faiss(vectors, monkeypatch, metric):
    import fashionrec.search as search

    monkeypatch.setattr(search, "_faiss_module", False)
    allowed = np.arange(len(vectors)) % 5 == 0
    for kwargs in ({}, {"allowed": allowed}):
        d, i = ExactIndex(metric).fit(vectors).search(vectors[3], 6, **kwargs)
        rd, ri = reference(vectors, vectors[3], 6, metric, allowed=kwargs.get("allowed"))
        np.testing.assert_array_equal(i, ri)
    with pytest.raises(ValueError, match="unknown metric"):
        ExactIndex("manhattan")


def test_many_tied_candidates_are_reranked_in_chunks():
    X = np.ones((5000, 4), dtype=np.float32)
    X[4321] = 0.5  # the one nearer vector
    d, i = ExactIndex("euclidean").fit(X).search(np.zeros(4, np.float32), 3)
    assert list(i[0]) == [4321, 0, 1]
    np.testing.assert_allclose(d[0], [1.0, 2.0, 2.0])

"""Retrieval metrics on hand-computed cases, and evaluate_index against plain NumPy."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.errors import QueryError
from fashionrec.evaluate import (
    average_precision_at_k,
    batch_metrics,
    evaluate_index,
    hit_at_1,
    ndcg_at_k,
    precision_at_k,
    random_baseline,
    write_evaluation,
)
from fashionrec.index import write_index


def test_metrics_hand_computed():
    rel = [1, 0, 1, 0, 0]
    assert precision_at_k(rel, 5) == pytest.approx(2 / 5)
    # AP: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(5, 3 relevant) = 5/9
    assert average_precision_at_k(rel, 5, 3) == pytest.approx(5 / 9)
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3) + 1/log2(4) = 2.1309298
    assert ndcg_at_k(rel, 5, 3) == pytest.approx(1.5 / 2.1309297535714573)
    assert hit_at_1(rel) == 1.0

    rel = [0, 1]
    assert precision_at_k(rel, 2) == 0.5
    assert average_precision_at_k(rel, 2, 1) == pytest.approx(0.5)  # (1/2) / min(2, 1)
    assert ndcg_at_k(rel, 2, 1) == pytest.approx(1 / math.log2(3))  # 0.6309
    assert hit_at_1(rel) == 0.0

    rel = [1]  # fewer results than k: the missing ones count as not relevant
    assert precision_at_k(rel, 3) == pytest.approx(1 / 3)
    assert average_precision_at_k(rel, 3, 5) == pytest.approx(1 / 3)  # 1 / min(3, 5)
    assert ndcg_at_k(rel, 3, 5) == pytest.approx(1 / (1 + 1 / math.log2(3) + 0.5))  # 0.46928

    assert average_precision_at_k([1, 1, 1], 3, 3) == 1.0 and ndcg_at_k([1, 1, 1], 3, 3) == pytest.approx(1.0)
    assert average_precision_at_k([0, 0], 2, 0) == 0.0 and ndcg_at_k([0, 0], 2, 0) == 0.0
    assert precision_at_k([1, 1, 0, 1], 2) == 1.0  # only the top k count
    with pytest.raises(ValueError):
        precision_at_k([1], 0)


def test_batch_metrics_equal_single_ones():
    rng = np.random.default_rng(0)
    rel = rng.random((50, 6)) < 0.4
    n_rel = rng.integers(1, 9, size=50)
    got = batch_metrics(rel, n_rel, 6)
    for i in range(50):
        assert got["precision"][i] == pytest.approx(precision_at_k(rel[i], 6))
        assert got["ap"][i] == pytest.approx(average_precision_at_k(rel[i], 6, n_rel[i]))
        assert got["ndcg"][i] == pytest.approx(ndcg_at_k(rel[i], 6, n_rel[i]))
        assert got["hit1"][i] == hit_at_1(rel[i])


def test_random_baseline_by_enumeration():
    # 4 candidates, 2 relevant, k = 2: the top two are (1,1) w.p. 1/6, (1,0) 1/3, (0,1) 1/3, (0,0) 1/6.
    # AP: 1, 1/2, 1/4, 0 -> expectation 1/6 + 1/6 + 1/12 = 5/12.
    base = random_baseline(np.array([2]), 4, 2)
    assert base["precision"][0] == pytest.approx(0.5)
    assert base["hit1"][0] == pytest.approx(0.5)
    assert base["ap"][0] == pytest.approx(5 / 12)
    # Exhaustive check over all orderings of a 6-item gallery with 3 relevant, k = 4.
    items = [1, 1, 1, 0, 0, 0]
    perms = list(itertools.permutations(range(6)))
    exp_ap = np.mean([average_precision_at_k([items[p] for p in perm], 4, 3) for perm in perms])
    exp_ndcg = np.mean([ndcg_at_k([items[p] for p in perm], 4, 3) for perm in perms])
    base = random_baseline(np.array([3]), 6, 4)
    assert base["ap"][0] == pytest.approx(exp_ap)
    assert base["ndcg"][0] == pytest.approx(exp_ndcg)
    assert base["precision"][0] == pytest.approx(0.5)


def make_data(n=240, d=16, seed=0):
    rng = np.random.default_rng(seed)
    types = np.array(["Heels", "Flats", "Tshirts", "Watches", "Socks"])
    colours = np.array(["Red", "Blue", "Black"])
    t = rng.integers(0, len(types), n)
    centres = rng.normal(size=(len(types), d)) * 1.5
    X = (centres[t] + rng.normal(size=(n, d))).astype(np.float32) * rng.uniform(0.5, 3, size=(n, 1)).astype(np.float32)
    X[7] = X[3]  # a tie
    products = pd.DataFrame(
        {
            "id": pd.array(rng.permutation(n) * 3 + 11, dtype="Int64"),
            "articleType": pd.array(types[t], dtype="string"),
            "baseColour": pd.array(colours[rng.integers(0, 3, n)], dtype="string"),
        }
    )
    products.loc[0, "articleType"] = pd.NA  # unlabelled: searched among, never a query
    products.loc[1, "articleType"] = "Sarees"  # the only one of its type: skipped
    return X, products


def numpy_precision(X, labels, k, normalize=False, metric="euclidean"):
    """Independent leave-one-out precision@k with a full float64 distance matrix."""
    X = X.astype(np.float64)
    if normalize or metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    labels = np.asarray(labels, dtype=object)
    out = {}
    for i, lab in enumerate(labels):
        if lab is None or (labels == lab).sum() < 2:
            continue
        top = np.argsort(D[i], kind="stable")[:k]
        out[i] = np.mean(labels[top] == lab)
    return out


@pytest.mark.parametrize("normalize", [False, True])
def test_precision_matches_numpy(normalize):
    X, products = make_data()
    res = evaluate_index((X, products), k=10, normalize=normalize, block_size=64)
    labels = [None if pd.isna(v) else v for v in products["articleType"]]
    want = numpy_precision(X, labels, 10, normalize=normalize)
    assert res.n_queries == len(want) == len(products) - 2 and res.n_skipped == 2
    assert res.overall["precision@10"] == pytest.approx(np.mean(list(want.values())), abs=1e-12)
    per_query = dict(zip(res.per_query["id"], res.per_query["precision@10"]))
    ids = products["id"]
    assert all(per_query[ids[i]] == pytest.approx(p) for i, p in want.items())
    # per class: counts and means agree
    heels = [p for i, p in want.items() if labels[i] == "Heels"]
    row = res.per_class.set_index("articleType").loc["Heels"]
    assert row["n_queries"] == len(heels) and row["precision@10"] == pytest.approx(np.mean(heels))
    assert list(res.per_class["n_queries"]) == sorted(res.per_class["n_queries"], reverse=True)
    # baseline: expected precision of a random ranking = R / (N - 1)
    counts = products["articleType"].value_counts()
    expected = np.mean([(counts[labels[i]] - 1) / (len(X) - 1) for i in want])
    assert res.baseline["precision@10"] == pytest.approx(expected)
    assert res.overall["precision@10"] > 2 * res.baseline["precision@10"]  # the clusters are found


def test_cosine_and_combined_relevance():
    X, products = make_data(seed=1)
    res = evaluate_index((X, products), k=5, metric="cosine")
    labels = [None if pd.isna(v) else v for v in products["articleType"]]
    want = numpy_precision(X, labels, 5, metric="cosine")
    assert res.overall["precision@5"] == pytest.approx(np.mean(list(want.values())))
    both = evaluate_index((X, products), k=5, relevance="articleType+baseColour")
    combo = [None if a is None else f"{a}/{c}" for a, c in zip(labels, products["baseColour"])]
    want = numpy_precision(X, combo, 5)
    assert both.overall["precision@5"] == pytest.approx(np.mean(list(want.values())))
    assert both.relevance == "articleType+baseColour"


def test_sample_is_seeded():
    X, products = make_data()
    a = evaluate_index((X, products), k=5, sample=40, seed=3)
    b = evaluate_index((X, products), k=5, sample=40, seed=3)
    assert a.n_queries == 40 and a.overall == b.overall
    assert list(a.per_query["id"]) == list(b.per_query["id"])


def test_errors():
    X, products = make_data()
    with pytest.raises(QueryError, match="unknown relevance 'colour'"):
        evaluate_index((X, products), relevance="colour")
    with pytest.raises(QueryError, match="unknown metric"):
        evaluate_index((X, products), metric="l1")
    with pytest.raises(QueryError, match="k must be at least 1"):
        evaluate_index((X, products), k=0)
    with pytest.raises(QueryError, match="sample must be a positive number"):
        evaluate_index((X, products), sample=0)
    with pytest.raises(QueryError, match="needs the attribute"):
        evaluate_index((X, products.drop(columns="baseColour")), relevance="articleType+baseColour")


def test_index_folder_and_outputs(tmp_path):
    X, products = make_data()
    write_index(tmp_path / "idx", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {}})
    res = evaluate_index(tmp_path / "idx", k=10)
    assert res.source["backbone"] == "fake"
    paths = write_evaluation(res, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["k"] == 10 and data["n_queries"] == res.n_queries
    assert data["overall"]["precision@10"] == pytest.approx(res.overall["precision@10"])
    assert {"articleType", "n_queries", "precision@10", "random_precision@10"} <= set(data["per_class"][0])
    with Image.open(paths["chart"]) as chart:
        chart.load()
        assert chart.format == "PNG" and chart.width > 300

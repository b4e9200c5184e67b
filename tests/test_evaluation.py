"""Retrieval metrics and their random baseline on hand-computed cases, evaluate_index against
plain NumPy, photo queries against a stub recommender, and the files write_evaluation writes."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.errors import FashionrecError, InvalidKError, QueryError
from fashionrec.evaluation import (
    CHART_FILE,
    EVALUATION_FILE,
    EvaluationSummary,
    PhotoQueryResult,
    average_precision_at_k,
    batch_metrics,
    evaluate_index,
    evaluate_photo_queries,
    hit_at_1,
    ndcg_at_k,
    precision_at_k,
    random_baseline,
    rephotograph,
    write_evaluation,
)
from fashionrec.index import write_index

# --------------------------------------------------------------------------- metrics


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
    assert hit_at_1([]) == 0.0
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        precision_at_k([1], 0)


def test_batch_metrics_hand_computed_rows():
    rel = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    got = batch_metrics(rel, np.array([2, 4, 0]), 3)
    assert got["precision"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    # AP: (1 + 2/3) / min(3, 2); (1/2) / min(3, 4); R = 0 -> 0
    assert got["ap"] == pytest.approx([5 / 6, 1 / 6, 0.0])
    ideal_2 = 1 + 1 / math.log2(3)
    ideal_3 = ideal_2 + 0.5
    assert got["ndcg"] == pytest.approx([1.5 / ideal_2, (1 / math.log2(3)) / ideal_3, 0.0])
    assert got["hit1"] == pytest.approx([1.0, 0.0, 0.0])


def test_batch_metrics_equal_single_ones():
    rng = np.random.default_rng(0)
    rel = rng.random((50, 6)) < 0.4
    n_rel = rng.integers(0, 9, size=50)
    got = batch_metrics(rel, n_rel, 6)
    for i in range(50):
        assert got["precision"][i] == pytest.approx(precision_at_k(rel[i], 6))
        assert got["ap"][i] == pytest.approx(average_precision_at_k(rel[i], 6, n_rel[i]))
        assert got["ndcg"][i] == pytest.approx(ndcg_at_k(rel[i], 6, n_rel[i]))
        assert got["hit1"][i] == hit_at_1(rel[i])


# --------------------------------------------------------------------------- random baseline


def test_random_baseline_hand_computed():
    # 4 candidates, 2 relevant, k = 2: the top two are (1,1) w.p. 1/6, (1,0) 1/3, (0,1) 1/3, (0,0) 1/6.
    # precision: 1/6 * 1 + 2/3 * 1/2 = 1/2; hit@1: P(first relevant) = 2/4.
    # AP: 1, 1/2, 1/4, 0 -> expectation 1/6 + 1/6 + 1/12 = 5/12.
    # DCG: 1 + 1/log2(3), 1, 1/log2(3), 0 -> expectation (1/6 + 1/3)(1 + 1/log2(3)) = (1 + 1/log2(3)) / 2,
    # over the ideal 1 + 1/log2(3): nDCG = 1/2.
    base = random_baseline(np.array([2]), 4, 2)
    assert base["precision"][0] == pytest.approx(1 / 2)
    assert base["hit1"][0] == pytest.approx(1 / 2)
    assert base["ap"][0] == pytest.approx(5 / 12)
    assert base["ndcg"][0] == pytest.approx(1 / 2)

    # 3 candidates, 1 relevant, k = 5: the one relevant item is always within the 3 results,
    # so precision@5 = 1/5 exactly; hit@1 = 1/3; AP = E[1/rank] / min(5, 1) = (1 + 1/2 + 1/3) / 3 = 11/18.
    base = random_baseline(np.array([1]), 3, 5)
    assert base["precision"][0] == pytest.approx(1 / 5)
    assert base["hit1"][0] == pytest.approx(1 / 3)
    assert base["ap"][0] == pytest.approx(11 / 18)
    assert base["ndcg"][0] == pytest.approx((1 + 1 / math.log2(3) + 1 / 2) / 3)

    # several queries at once, one with nothing relevant; R / M per query for precision and hit@1 when k <= M
    base = random_baseline(np.array([0, 5, 10]), 10, 3)
    assert base["precision"] == pytest.approx([0.0, 0.5, 1.0])
    assert base["hit1"] == pytest.approx([0.0, 0.5, 1.0])
    # R = 5 of M = 10: rank j relevant w.p. 1/2, two ranks both w.p. 5*4 / (10*9) = 2/9;
    # E[rel_j * hits_j / j] = (1/2 + (j - 1) 2/9) / j -> 1/2 + 13/36 + 17/54 = 127/108, over min(3, 5).
    # nDCG: every rank is relevant w.p. 1/2 and the ideal has all 3 relevant -> 1/2.
    # R = M: every item is relevant, a perfect ranking whatever the order.
    assert base["ap"] == pytest.approx([0.0, 127 / 324, 1.0])
    assert base["ndcg"] == pytest.approx([0.0, 0.5, 1.0])


def test_random_baseline_by_enumeration():
    # Exhaustive check over all orderings of a 6-item gallery with 3 relevant, k = 4.
    items = [1, 1, 1, 0, 0, 0]
    rankings = [[items[p] for p in perm] for perm in itertools.permutations(range(6))]
    base = random_baseline(np.array([3]), 6, 4)
    assert base["ap"][0] == pytest.approx(np.mean([average_precision_at_k(r, 4, 3) for r in rankings]))
    assert base["ndcg"][0] == pytest.approx(np.mean([ndcg_at_k(r, 4, 3) for r in rankings]))
    assert base["precision"][0] == pytest.approx(np.mean([precision_at_k(r, 4) for r in rankings]))
    assert base["hit1"][0] == pytest.approx(np.mean([hit_at_1(r) for r in rankings]))
    assert base["precision"][0] == pytest.approx(1 / 2) and base["hit1"][0] == pytest.approx(1 / 2)


# --------------------------------------------------------------------------- leave-one-out


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
    # baseline: expected precision of a random ranking = R / (N - 1), per class and overall
    counts = products["articleType"].value_counts()
    assert row["random_precision@10"] == pytest.approx((counts["Heels"] - 1) / (len(X) - 1))
    expected = np.mean([(counts[labels[i]] - 1) / (len(X) - 1) for i in want])
    assert res.baseline["precision@10"] == pytest.approx(expected)
    assert res.baseline["hit@1"] == pytest.approx(expected)
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


def test_tiny_index_by_hand():
    # Four products on a line: A0=0, A1=1, B0=10, B1=11.5, plus an unlabelled one at 5.
    X = np.array([[0.0], [1.0], [10.0], [11.5], [5.0]], dtype=np.float32)
    products = pd.DataFrame(
        {
            "id": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
            "articleType": pd.array(["A", "A", "B", "B", None], dtype="string"),
        }
    )
    res = evaluate_index((X, products), k=2)
    # each query's nearest other is its own type, the second is the unlabelled product at 5:
    # precision@2 = 1/2, AP@2 = 1 / min(2, 1) = 1, hit@1 = 1, nDCG = 1.
    assert res.n_queries == 4 and res.n_skipped == 1 and res.n_products == 5
    assert res.overall == pytest.approx({"precision@2": 0.5, "mAP@2": 1.0, "nDCG@2": 1.0, "hit@1": 1.0})
    # random over the 4 other products, 1 relevant: precision 1/4, hit@1 1/4, AP = (1 + 1/2) / 4,
    # nDCG = (1/4)(1 + 1/log2(3)) / 1
    assert res.baseline == pytest.approx(
        {"precision@2": 0.25, "mAP@2": 0.375, "nDCG@2": 0.25 * (1 + 1 / math.log2(3)), "hit@1": 0.25}
    )
    assert list(res.per_class["articleType"]) == ["A", "B"]


def test_sample_is_seeded():
    X, products = make_data()
    a = evaluate_index((X, products), k=5, sample=40, seed=3)
    b = evaluate_index((X, products), k=5, sample=40, seed=3)
    c = evaluate_index((X, products), k=5, sample=40, seed=4)
    assert a.n_queries == 40 and a.overall == b.overall
    assert list(a.per_query["id"]) == list(b.per_query["id"]) != list(c.per_query["id"])
    assert evaluate_index((X, products), k=5, sample=10_000).n_queries == len(products) - 2  # more than there are: all


def test_k_beyond_the_other_products_is_capped_before_allocating():
    """k > N - 1 ranks every other product once; the metrics follow their definitions at the k asked for."""
    import time
    import tracemalloc

    X, products = make_data(n=60)
    n = len(products)
    full = evaluate_index((X, products), k=n - 1)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        huge = evaluate_index((X, products), k=10**11)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 20_000_000  # bytes; (58 queries x 10**11) int64 would be 46 TB
    assert huge.k == 10**11 and huge.n_queries == full.n_queries
    big, small = f"@{10**11}", f"@{n - 1}"
    # precision@k divides by the k asked for: every other product ranked, then "missing" results
    np.testing.assert_allclose(huge.per_query["precision" + big] * 10**11,
                               full.per_query["precision" + small] * (n - 1), rtol=1e-12)
    np.testing.assert_allclose(huge.per_query["random_precision" + big] * 10**11,
                               full.per_query["random_precision" + small] * (n - 1), rtol=1e-12)
    # AP, nDCG and hit@1 depend on k only through min(k, R), R <= N - 1: unchanged
    for name in ("mAP", "nDCG"):
        assert huge.overall[name + big] == pytest.approx(full.overall[name + small], abs=1e-12)
        assert huge.baseline[name + big] == pytest.approx(full.baseline[name + small], abs=1e-12)
    assert huge.overall["hit@1"] == full.overall["hit@1"] and huge.baseline["hit@1"] == full.baseline["hit@1"]
    # just past N - 1: the same, by the definitions
    past = evaluate_index((X, products), k=n)
    assert past.overall["mAP" + f"@{n}"] == pytest.approx(full.overall["mAP" + small], abs=1e-12)
    assert past.overall[f"precision@{n}"] == pytest.approx(full.overall["precision" + small] * (n - 1) / n)


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
    with pytest.raises(QueryError, match=r"shape \(240, 16\) do not match 239 products"):
        evaluate_index((X, products.iloc[:-1]))
    lonely = products.assign(articleType=pd.array([f"t{i}" for i in range(len(products))], dtype="string"))
    with pytest.raises(QueryError, match="no product can be evaluated"):
        evaluate_index((X, lonely))


# --------------------------------------------------------------------------- evaluation.json and the chart

SUMMARY_KEYS = [
    "k", "relevance", "metric", "engine", "normalize", "n_products", "n_queries", "n_skipped",
    "sample", "seed", "seconds", "source", "overall", "baseline", "per_class",
]  # fmt: skip


def test_index_folder_and_outputs(tmp_path):
    X, products = make_data()
    write_index(tmp_path / "idx", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {}})
    res = evaluate_index(tmp_path / "idx", k=10)
    paths = write_evaluation(res, tmp_path / "out")
    assert paths == {"json": tmp_path / "out" / EVALUATION_FILE, "chart": tmp_path / "out" / CHART_FILE}

    data = json.loads(paths["json"].read_text())
    assert list(data) == SUMMARY_KEYS
    assert data["source"] == {"index": str(tmp_path / "idx"), "backbone": "fake", "dim": 16}
    assert data["k"] == 10 and data["n_queries"] == res.n_queries == 238 and data["n_products"] == 240
    assert data["sample"] is None and data["normalize"] is False and data["relevance"] == "articleType"
    assert data["overall"] == pytest.approx(res.overall) and list(data["overall"]) == [
        "precision@10", "mAP@10", "nDCG@10", "hit@1"
    ]  # fmt: skip
    assert data["baseline"] == pytest.approx(res.baseline)
    assert [list(row) for row in data["per_class"]] == [
        ["articleType", "n_queries", "precision@10", "mAP@10", "nDCG@10", "hit@1", "random_precision@10"]
    ] * len(res.per_class)
    assert [row["articleType"] for row in data["per_class"]] == list(res.per_class["articleType"])
    assert sum(row["n_queries"] for row in data["per_class"]) == res.n_queries
    # the file is what the model says, and the model reads it back unchanged
    assert EvaluationSummary.model_validate(data).model_dump(mode="json") == data == res.to_dict() | {
        "seconds": data["seconds"]
    }

    with Image.open(paths["chart"]) as chart:
        chart.load()
        assert chart.format == "PNG"
        pixels = np.asarray(chart.convert("RGB"), dtype=int)
    height, width, _ = pixels.shape
    assert width == 800 and 300 <= height <= 2000
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    bluish = (b - r > 40) & (b > 120)  # the model's bars
    greyish = (abs(r - g) < 8) & (abs(g - b) < 8) & (r > 150) & (r < 215)  # the random bars
    assert bluish.mean() > 0.01 and greyish.mean() > 0.002


def test_photo_query_block_and_non_finite_values(tmp_path):
    X, products = make_data()
    res = evaluate_index((X, products), k=5)
    overall = {"hit@1": 1 / 3, "recall@5": 2 / 3, "MRR": 0.5}
    chance = {"hit@1": 1 / 240, "recall@5": 5 / 240, "MRR": float("nan")}
    photos = PhotoQueryResult(3, 240, 5, overall, chance, ranks=[1, 2, None], seconds=1.23456)
    res.overall["mAP@5"] = float("nan")
    res.per_class.loc[0, "nDCG@5"] = np.inf
    written = json.loads(write_evaluation(res, tmp_path, photo_queries=photos)["json"].read_text())
    assert list(written) == [*SUMMARY_KEYS, "photo_queries"]
    assert written["source"] == {}
    assert written["overall"]["mAP@5"] is None and written["per_class"][0]["nDCG@5"] is None
    assert written["photo_queries"] == {
        "n_queries": 3, "n_products": 240, "k": 5,
        "overall": {"hit@1": 1 / 3, "recall@5": 2 / 3, "MRR": 0.5},
        "chance": {"hit@1": 1 / 240, "recall@5": 5 / 240, "MRR": None},
        "per_kind": {}, "match_catalog": True,
        "seconds": 1.235,
    }  # fmt: skip
    assert written["photo_queries"] == photos.to_dict()
    assert "photo_queries" not in res.to_dict()
    assert EvaluationSummary.model_validate(written).model_dump(mode="json") == written


def test_schema_describes_the_file():
    schema = EvaluationSummary.model_json_schema()
    assert list(schema["properties"]) == [*SUMMARY_KEYS, "photo_queries", "real_photos"]
    # photo_queries and real_photos are optional, and engine too: files written before engines existed were all exact
    assert schema["required"] == [key for key in SUMMARY_KEYS if key != "engine"]
    older = evaluate_index(make_data(n=40)).to_dict()
    del older["engine"]
    assert EvaluationSummary.model_validate(older).engine == "exact"
    row = schema["$defs"]["ClassRow"]
    assert row["required"] == ["articleType", "n_queries"]
    assert {"type": "null"} in row["additionalProperties"]["anyOf"]  # a metric may be null


def test_write_evaluation_into_a_file_fails_clearly(tmp_path):
    X, products = make_data()
    res = evaluate_index((X, products), k=5, sample=20)
    (tmp_path / "taken").write_text("")
    with pytest.raises(FashionrecError, match="cannot create output folder .*taken"):
        write_evaluation(res, tmp_path / "taken" / "out")


# --------------------------------------------------------------------------- photo queries


def test_rephotograph_is_a_seeded_new_photo_of_the_same_item():
    image = Image.new("RGBA", (60, 80), (0, 0, 0, 0))
    image.paste((200, 30, 30, 255), (10, 10, 50, 70))  # a red item on a transparent background
    a = rephotograph(image, np.random.default_rng(5))
    b = rephotograph(image, np.random.default_rng(5))
    c = rephotograph(image, np.random.default_rng(6))
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))
    # larger than the original (crop >= 80 %, then 2-4x), still mostly the red item in the middle
    assert a.width >= 1.6 * 60 and a.height >= 1.6 * 80
    centre = np.asarray(a, dtype=float)[a.height // 2 - 5 : a.height // 2 + 5, a.width // 2 - 5 : a.width // 2 + 5]
    red, green, blue = centre.reshape(-1, 3).mean(0)
    assert red > 150 and green < 80 and blue < 80
    # the transparent background became light, not black
    corner = np.asarray(a, dtype=float)[:3, :3].mean()
    assert corner > 180


class StubRecommender:
    """Products 10/20/30 are a red, a green and a blue square; 40 has no image.

    A photo is recognised by its dominant colour and answered with a fixed
    ranking: 10 ranks first, 20 ranks second, 30 is not in the top 2.
    """

    RANKINGS = {10: [10, 20, 30, 40], 20: [30, 20, 10, 40], 30: [10, 20, 40, 30]}
    COLOURS = {10: (210, 20, 20), 20: (20, 210, 20), 30: (20, 20, 210)}

    allow_private_urls = False
    match_catalog = True

    def __init__(self, folder):
        self.products = pd.DataFrame({"id": [10, 20, 30, 40]})
        self.index = SimpleNamespace(path=folder)
        self.images = {}
        for pid, colour in self.COLOURS.items():
            path = folder / f"{pid}.png"
            Image.new("RGB", (40, 40), colour).save(path)
            self.images[pid] = path

    def image_source(self, pid):
        return self.images.get(int(pid))

    def similar_to_image(self, photo, k, metric, match_catalog=None):
        h, w = photo.height // 3, photo.width // 3
        centre = np.asarray(photo, dtype=float)[h:-h, w:-w]
        pid = [10, 20, 30][int(np.argmax(centre.reshape(-1, 3).mean(0)))]
        return pd.DataFrame({"id": self.RANKINGS[pid][:k]})


def test_photo_queries_hand_computed(tmp_path):
    result = evaluate_photo_queries(StubRecommender(tmp_path), n=10, k=2, seed=0)
    # 3 photos (40 has no image): ranks 1, 2 and none within k = 2
    assert result.n_queries == 3 and result.n_products == 4 and result.k == 2
    assert sorted(result.ranks, key=lambda r: r or 99) == [1, 2, None]
    assert result.overall == pytest.approx({"hit@1": 1 / 3, "recall@2": 2 / 3, "MRR": (1 + 1 / 2) / 3})
    # a random ranking of 4 products: first w.p. 1/4, top 2 w.p. 2/4, E[1/rank within 2] = (1 + 1/2) / 4
    assert result.chance == pytest.approx({"hit@1": 0.25, "recall@2": 0.5, "MRR": 0.375})


def test_photo_queries_leave_out_a_product_whose_image_cannot_be_opened(tmp_path):
    rec = StubRecommender(tmp_path)
    rec.images[30].unlink()  # listed, but gone from the disk
    result = evaluate_photo_queries(rec, n=10, k=2, seed=0)
    assert result.n_queries == 2 and sorted(result.ranks) == [1, 2]


def test_photo_queries_errors(tmp_path):
    rec = StubRecommender(tmp_path)
    with pytest.raises(InvalidKError, match="the number of photo queries must be at least 1, got 0"):
        evaluate_photo_queries(rec, n=0, k=2)
    with pytest.raises(InvalidKError, match="k must be at least 1, got 0"):
        evaluate_photo_queries(rec, n=3, k=0)
    rec.images = {}
    with pytest.raises(QueryError, match="no product image of index .* could be opened"):
        evaluate_photo_queries(rec, n=4)

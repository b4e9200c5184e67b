"""Recommender on a tiny index written with write_index (no real backbone needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.errors import QueryError
from fashionrec.index import write_index
from fashionrec.recommend import Recommender


class MeanColour:
    """A stand-in embedder: the mean RGB colour of a picture, in [0, 1]."""

    calls = 0

    def embed(self, images):
        MeanColour.calls += 1
        return np.array([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0) / 255 for im in images], np.float32)


TYPES = ["Heels", "Flats", "Tshirts"]
GENDERS = ["Women", "Men"]


@pytest.fixture
def index_dir(tmp_path):
    rng = np.random.default_rng(5)
    n = 30
    ids = rng.permutation(np.arange(1000, 1000 + n * 7, 7))  # rows not in id order
    colours = rng.integers(0, 256, size=(n, 3))
    colours[[4, 9, 17]] = colours[2]  # three products share the colour of row 2
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    for pid, colour in zip(ids, colours):
        Image.new("RGB", (8, 10), tuple(int(c) for c in colour)).save(root / "images" / f"{pid}.png")
    products = pd.DataFrame(
        {
            "id": pd.array(ids, dtype="Int64"),
            "gender": [GENDERS[i % 2] for i in range(n)],
            "articleType": [TYPES[i % 3] for i in range(n)],
            "baseColour": ["Red"] * n,
            "productDisplayName": [f"Product {i}" for i in range(n)],
            "image": [f"images/{pid}.png" for pid in ids],
            "image_signature": ["x"] * n,
            "link": [f"http://127.0.0.1:9/{pid}.png" for pid in ids],
        }
    )
    products.loc[5, "image"] = "images/missing.png"  # no local file: falls back to the link
    products.loc[6, ["image", "link"]] = [pd.NA, pd.NA]
    embeddings = MeanColour().embed([Image.new("RGB", (2, 2), tuple(int(c) for c in col)) for col in colours])
    path = tmp_path / "index"
    write_index(path, embeddings, products, {"backbone": "fake", "weights": "none", "preprocessing": {},
                                             "catalog": {"root": str(root)}})
    return path


@pytest.fixture
def rec(index_dir):
    return Recommender.load(index_dir, embedder=MeanColour())


def brute(rec, row, k, metric="euclidean", allowed=None):
    X = np.asarray(rec.index.embeddings, dtype=np.float64)
    q = X[row]
    if metric == "euclidean":
        d = np.sqrt(((X - q) ** 2).sum(1))
    else:
        d = 1 - X @ q / (np.linalg.norm(X, axis=1) * np.linalg.norm(q))
    frame = pd.DataFrame({"id": rec.products["id"].astype(int), "distance": d})
    frame = frame.drop(index=row)
    if allowed is not None:
        frame = frame[allowed[frame.index]]
    return frame.sort_values(["distance", "id"], kind="stable").head(k)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_similar_matches_brute_force(rec, metric):
    for row in (0, 2, 13):
        pid = int(rec.products["id"][row])
        got = rec.similar(pid, k=8, metric=metric)
        want = brute(rec, row, 8, metric)
        assert list(got["id"]) == list(want["id"])
        np.testing.assert_allclose(got["distance"], want["distance"], rtol=1e-9, atol=1e-12)
        assert pid not in set(got["id"])
        assert list(got.index) == list(range(8))


def test_duplicates_ties_by_id_and_self_excluded(rec):
    ids = rec.products["id"]
    dup_ids = sorted(int(ids[r]) for r in (2, 4, 9, 17))
    query = dup_ids[1]  # a duplicate vector exists elsewhere: only the query itself is dropped
    got = rec.similar(str(query), k=2)  # id given as a string
    assert list(got["id"]) == [dup_ids[0], dup_ids[2]]  # cut inside the tie, by id
    assert (got["distance"] == 0).all()
    got = rec.similar(query, k=3)
    assert list(got["id"]) == [d for d in dup_ids if d != query]


def test_columns(rec):
    got = rec.similar(int(rec.products["id"][0]), k=3)
    assert list(got.columns[:2]) == ["id", "distance"]
    assert "image" in got.columns and "link" in got.columns
    assert "image_signature" not in got.columns
    assert got["distance"].is_monotonic_increasing


def test_where_filters(rec):
    pid = int(rec.products["id"][0])
    got = rec.similar(pid, k=50, where={"gender": "women", "articleType": ["Heels", "Flats"]})
    assert set(got["gender"]) == {"Women"} and set(got["articleType"]) <= {"Heels", "Flats"}
    allowed = ((rec.products["gender"] == "Women") & rec.products["articleType"].isin(["Heels", "Flats"])).to_numpy()
    want = brute(rec, 0, 50, allowed=allowed)
    assert list(got["id"]) == list(want["id"])  # filtered search stays exact; k > candidates returns all
    assert len(got) == allowed.sum() - 1  # the query (row 0 is a Women Heels) is excluded
    same = rec.similar(pid, k=len(got), where={"gender": "Women", "articleType": ["Heels", "Flats"]})
    assert list(same["id"]) == list(got["id"])  # k == candidates
    again = rec.similar(pid, k=50, where={"articleType": ["flats", "HEELS"], "gender": "WOMEN"})  # cached mask
    assert list(again["id"]) == list(got["id"])
    men = rec.similar(pid, k=50, where={"gender": "Men"})
    assert set(men["gender"]) == {"Men"}


def test_filter_matching_only_the_query_is_empty(rec):
    pid = int(rec.products["id"][0])
    got = rec.similar(pid, k=5, where={"id": pid})
    assert got.empty and list(got.columns[:2]) == ["id", "distance"]


def test_errors(rec):
    pid = int(rec.products["id"][0])
    with pytest.raises(QueryError, match="unknown product id 424242"):
        rec.similar(424242)
    with pytest.raises(QueryError, match="'abc' is not an integer"):
        rec.similar("abc")
    with pytest.raises(QueryError, match="unknown attribute 'colour'"):
        rec.similar(pid, where={"colour": "Red"})
    with pytest.raises(QueryError, match="no product matches the filter"):
        rec.similar(pid, where={"articleType": "Sarees"})
    for bad_k in (0, -3):
        with pytest.raises(QueryError, match="k must be at least 1"):
            rec.similar(pid, k=bad_k)
    with pytest.raises(QueryError, match="unknown metric 'manhattan'"):
        rec.similar(pid, metric="manhattan")


def test_index_cached_per_metric(rec):
    pid = int(rec.products["id"][0])
    rec.similar(pid)
    first = rec._indexes["euclidean"]
    rec.similar(pid, where={"gender": "Men"})
    rec.similar(pid, metric="cosine")
    assert rec._indexes["euclidean"] is first and set(rec._indexes) == {"euclidean", "cosine"}


def test_similar_to_image(rec, index_dir, tmp_path):
    row = 13
    colour = tuple(int(round(c * 255)) for c in rec.index.embeddings[row])
    picture = Image.new("RGB", (5, 5), colour)
    got = rec.similar_to_image(picture, k=3)
    assert int(got["id"][0]) == int(rec.products["id"][row])  # nothing excluded for a picture
    assert got["distance"][0] == pytest.approx(0, abs=1e-6)
    path = tmp_path / "q.png"
    picture.save(path)
    by_path = rec.similar_to_image(path, k=3, where={"gender": "Men"})
    assert set(by_path["gender"]) == {"Men"}
    with pytest.raises(QueryError, match="not found"):
        rec.similar_to_image(tmp_path / "nope.png")


def test_embedder_shape_checked(index_dir):
    class Wrong:
        def embed(self, images):
            return np.zeros((1, 7), np.float32)

    rec = Recommender.load(index_dir, embedder=Wrong())
    with pytest.raises(QueryError, match=r"shape \(1, 7\), expected \(1, 3\)"):
        rec.similar_to_image(Image.new("RGB", (2, 2)))


def test_query_product_and_image_source(rec, index_dir, tmp_path):
    ids = rec.products["id"]
    product = rec.query_product(str(ids[0]))
    assert product["id"] == ids[0] and product["productDisplayName"] == "Product 0"
    assert "image_signature" not in product
    source = rec.image_source(product)
    assert source == rec.catalog_root / f"images/{ids[0]}.png" and source.is_file()
    assert rec.image_source(int(ids[5])) == f"http://127.0.0.1:9/{ids[5]}.png"  # file missing: link
    assert rec.image_source(int(ids[6])) is None
    results = rec.similar(int(ids[0]), k=3)
    assert all(rec.image_source(row) is not None for _, row in results.iterrows())
    # catalog_root override
    other = Recommender.load(index_dir, catalog_root=tmp_path / "elsewhere")
    assert other.image_source(int(ids[0])) == f"http://127.0.0.1:9/{ids[0]}.png"


def test_string_ids(tmp_path):
    products = pd.DataFrame({"id": ["b", "a", "c"], "articleType": ["x", "x", "y"]})
    X = np.zeros((3, 2), np.float32)  # all tied
    write_index(tmp_path / "s", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {}})
    rec = Recommender.load(tmp_path / "s")
    assert list(rec.similar("c", k=2)["id"]) == ["a", "b"]
    with pytest.raises(QueryError, match="unknown product id 'z'"):
        rec.similar("z")

"""Recommender on a tiny index written with write_index (no real backbone needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.errors import (
    FilterError,
    InvalidKError,
    QueryError,
    UnknownEngineError,
    UnknownMetricError,
    UnknownProductError,
)
from fashionrec.index import write_index
from fashionrec.recommend import FACETS, IndexInfo, Product, ProductPage, Recommender


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
    with pytest.raises(UnknownProductError, match="unknown product id 424242"):
        rec.similar(424242)
    with pytest.raises(UnknownProductError, match="'abc' is not an integer"):
        rec.similar("abc")
    with pytest.raises(UnknownProductError, match="unknown product id 424242"):
        rec.query_product(424242)
    with pytest.raises(QueryError, match="unknown attribute 'colour'"):
        rec.similar(pid, where={"colour": "Red"})
    with pytest.raises(QueryError, match="no product matches the filter"):
        rec.similar(pid, where={"articleType": "Sarees"})
    for bad_k in (0, -3):
        with pytest.raises(QueryError, match="k must be at least 1"):
            rec.similar(pid, k=bad_k)
    with pytest.raises(QueryError, match="unknown metric 'manhattan'"):
        rec.similar(pid, metric="manhattan")


def test_one_engine_per_metric_made_once(rec):
    pid = int(rec.products["id"][0])
    rec.similar(pid)
    first = rec.engine("euclidean")
    rec.similar(pid, where={"gender": "Men"})
    rec.similar(pid, metric="cosine")
    assert rec.engine("euclidean") is first and rec.engine("cosine") is not first
    assert rec.engine("cosine").metric == "cosine" and rec.engine_name == "exact"
    with pytest.raises(UnknownEngineError, match="unknown search engine 'annoy'"):
        Recommender.load(rec.index.path, engine="annoy")


def test_errors_have_one_type_per_mistake(rec):
    pid = int(rec.products["id"][0])
    with pytest.raises(InvalidKError):
        rec.similar(pid, k="five")
    with pytest.raises(UnknownMetricError):
        rec.similar_to_image(Image.new("RGB", (2, 2)), metric="l1")
    with pytest.raises(FilterError):
        rec.similar(pid, where="gender=Women")  # a string, not a mapping
    assert int(rec.similar(pid, k="3").shape[0]) == 3  # "3" from a form or a CLI is a whole number


def test_sixteen_threads_give_the_single_threaded_answers(rec, tmp_path):
    """Mixed similar / similar_to_image / filtered calls from 16 threads, each compared with a serial run."""
    from concurrent.futures import ThreadPoolExecutor

    fresh = Recommender.load(rec.index.path, embedder=MeanColour())  # nothing made yet: first calls race
    ids = [int(i) for i in rec.products["id"]]
    pictures = [Image.new("RGB", (6, 6), (i * 8, 255 - i * 8, (i * 37) % 256)) for i in range(30)]
    filters = [None, {"gender": "Women"}, {"articleType": ["Heels", "Flats"]}, {"gender": "Men", "articleType": "Tshirts"}]

    def call(n):
        where, metric = filters[n % 4], ("euclidean", "cosine")[n % 3 == 0]
        if n % 2:
            return fresh.similar(ids[n % len(ids)], k=5, where=where, metric=metric)
        return fresh.similar_to_image(pictures[n % len(pictures)], k=5, where=where, metric=metric)

    with ThreadPoolExecutor(16) as pool:
        threaded = list(pool.map(call, range(400)))
    serial = [call(n) for n in range(400)]
    for got, expected in zip(threaded, serial):
        pd.testing.assert_frame_equal(got, expected)


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


def test_photo_urls_of_private_hosts_are_refused_unless_allowed(index_dir, tmp_path):
    """A Recommender fetches public hosts only, unless made for an intranet catalog (allow_private_urls=True)."""
    import http.server
    import threading
    from functools import partial

    from fashionrec.images import PrivateHostError

    row = 13
    colour = tuple(int(round(c * 255)) for c in Recommender.load(index_dir).index.embeddings[row])
    (tmp_path / "www").mkdir()
    Image.new("RGB", (5, 5), colour).save(tmp_path / "www" / "q.png")
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/q.png"
    try:
        strict = Recommender.load(index_dir, embedder=MeanColour())
        for call in (strict.similar_to_image, strict.image_recommendations):
            with pytest.raises(PrivateHostError, match=f"image URL {url} refused: host '127.0.0.1'.*allow_private_urls=True"):
                call(url, k=3)
        assert requested == []  # refused before connecting
        intranet = Recommender.load(index_dir, embedder=MeanColour(), allow_private_urls=True)
        got = intranet.similar_to_image(url, k=3)
        assert int(got["id"][0]) == int(intranet.products["id"][row])
        assert intranet.image_recommendations(url, k=3).query.image == url
    finally:
        server.shutdown()
        server.server_close()


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


def test_result_contract_json(rec):
    """One shape for every interface: {"query": {...}, "results": [{"id", "distance", attributes...}]}."""
    import json

    from fashionrec.recommend import Recommendations

    pid = int(rec.products["id"][6])  # the product without image or link: nulls, not NaN
    frame = rec.similar(pid, k=3)
    payload = json.loads(Recommendations.from_frame(rec.query_product(pid), frame).to_json())
    assert list(payload) == ["query", "results"]
    assert list(payload["query"]) == ["id", "gender", "articleType", "baseColour", "productDisplayName", "image", "link"]
    assert payload["query"]["id"] == pid and payload["query"]["image"] is None and payload["query"]["link"] is None
    assert [r["id"] for r in payload["results"]] == [int(i) for i in frame["id"]]
    assert [r["distance"] for r in payload["results"]] == frame["distance"].tolist()
    assert list(payload["results"][0])[:3] == ["id", "distance", "gender"]
    photo = Recommendations.from_frame({"image": "shoe.jpg"}, frame).to_dict()
    assert photo["query"] == {"image": "shoe.jpg"}
    assert Recommendations.model_validate(payload).to_dict() == payload  # the JSON reads back as the model
    schema = Recommendations.model_json_schema()
    assert set(schema["properties"]) == {"query", "results"}


@pytest.mark.slow
def test_threads_with_the_real_backbone(make_catalog, tmp_path):
    """16 threads, a fresh Recommender over a real Lite0 index: the lazily loaded model and engines
    are made once, and every answer equals the single-threaded one."""
    from concurrent.futures import ThreadPoolExecutor

    from fashionrec.catalog import load_catalog
    from fashionrec.embedding import ImageEmbedder, build_index

    catalog = load_catalog(make_catalog(n=24))
    build_index(catalog, tmp_path / "index", embedder=ImageEmbedder("efficientnet_lite0"))
    single = Recommender.load(tmp_path / "index")
    ids = [int(i) for i in single.products["id"]]
    photos = [Image.open(single.image_source(i)).convert("RGB").rotate(7 * n) for n, i in enumerate(ids[:8])]

    def call(rec, n):
        if n % 3 == 0:
            return rec.similar_to_image(photos[n % len(photos)], k=4, where={"gender": ["Women", "Men"]} if n % 2 else None)
        return rec.similar(ids[n % len(ids)], k=4, metric=("euclidean", "cosine")[n % 2])

    expected = [call(single, n) for n in range(48)]
    threaded_rec = Recommender.load(tmp_path / "index")
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda n: call(threaded_rec, n), range(48)))
    for a, b in zip(got, expected):
        assert a["id"].tolist() == b["id"].tolist()
        np.testing.assert_allclose(a["distance"], b["distance"], rtol=1e-5)



# ---------------------------------------------------------------- browsing the catalog

SHOP = pd.DataFrame(
    [  # id, gender, masterCategory, subCategory, articleType, baseColour, season, year, usage, productDisplayName
        (11, "Women", "Footwear", "Shoes", "Heels", "Red", "Summer", 2012, "Party", "Red Party Heels"),
        (12, "Women", "Footwear", "Shoes", "Heels", "Black", "Winter", 2011, "Casual", "Black Office Heels"),
        (13, "Women", "Footwear", "Shoes", "Flats", "Red", "Summer", 2012, "Casual", "Red Ballet Flats"),
        (14, "Men", "Footwear", "Shoes", "Formal Shoes", "Black", "Winter", 2012, "Formal", "Black Leather Shoes"),
        (15, "Men", "Apparel", "Topwear", "Tshirts", "Red", "Summer", 2013, "Casual", "Red Cotton Tshirt"),
        (16, "Women", "Apparel", "Topwear", "Tshirts", None, "Fall", 2013, "Casual", "Women Printed T-shirt"),
        (17, "Unisex", "Accessories", "Bags", "Backpacks", "Black", None, None, "Casual", None),
        (18, "Women", "Footwear", "Shoes", "Heels", "Red", "Summer", 2012, None, "RED stiletto HEELS"),
    ],
    columns=["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage",
             "productDisplayName"],
).astype({"id": "Int64", "year": "Int64"})


@pytest.fixture
def shop(tmp_path):
    """Eight products whose facet counts are worked out by hand below (vectors do not matter here)."""
    products = SHOP.assign(image=[f"images/{i}.jpg" for i in SHOP["id"]], image_signature="x")
    for column in products.columns[1:]:
        if products[column].dtype == object:
            products[column] = products[column].astype("string")
    write_index(tmp_path / "shop", np.zeros((len(products), 2), np.float32), products,
                {"backbone": "fake", "weights": "none", "preprocessing": {"mode": "crop"},
                 "catalog": {"root": str(tmp_path / "catalog"), "where": {"gender": ["Women", "Men", "Unisex"]}},
                 "runtime": "torch", "precision": "fp32"})
    return Recommender.load(tmp_path / "shop")


def ids(page: ProductPage) -> list:
    return [p.id for p in page.products]


def test_browse_women_heels_by_hand(shop):
    page = shop.browse({"gender": "Women", "articleType": "Heels"})
    assert (page.total, page.page, page.per_page, page.pages) == (3, 1, 48, 1)
    assert ids(page) == [11, 12, 18]  # index order
    # Each attribute counts over the text and every *other* filter term; values by count, then by value.
    assert page.facets == {
        "gender": {"Women": 3},  # the Heels: all Women
        "masterCategory": {"Footwear": 3},
        "subCategory": {"Shoes": 3},
        "articleType": {"Heels": 3, "Flats": 1, "Tshirts": 1},  # the Women: other types keep their counts
        "baseColour": {"Red": 2, "Black": 1},
        "season": {"Summer": 2, "Winter": 1},
        "usage": {"Casual": 1, "Party": 1},  # 18's usage is missing: not counted
    }
    assert list(page.facets["articleType"]) == ["Heels", "Flats", "Tshirts"]
    assert list(page.facets["usage"]) == ["Casual", "Party"]


def test_browse_everything_and_paging(shop):
    page = shop.browse()
    assert page.total == 8 and ids(page) == list(SHOP["id"])
    assert page.facets["gender"] == {"Women": 5, "Men": 2, "Unisex": 1}
    assert page.facets["baseColour"] == {"Red": 4, "Black": 3}  # 16 has none
    assert list(page.facets) == list(FACETS)
    pages = [shop.browse(page=n, per_page=3) for n in (1, 2, 3, 4)]
    assert [ids(p) for p in pages] == [[11, 12, 13], [14, 15, 16], [17, 18], []]  # past the last page: empty
    assert {(p.total, p.pages, p.per_page) for p in pages} == {(8, 3, 3)}
    assert all(p.facets == page.facets for p in pages)
    nothing = shop.browse({"articleType": "Sarees"})
    assert (nothing.total, nothing.pages, nothing.products) == (0, 0, [])
    assert nothing.facets["articleType"] == page.facets["articleType"]  # its own term is not applied to it
    assert nothing.facets["gender"] == {}


def test_browse_text(shop):
    assert ids(shop.browse(text="red heels")) == [11, 18]  # every word, any case, anywhere in the name
    assert ids(shop.browse(text="HEELS")) == [11, 12, 18]
    assert ids(shop.browse(text="shirt")) == [15, 16]  # inside words: "Tshirt", "T-shirt"
    assert ids(shop.browse(text="  ")) == list(SHOP["id"])  # no words: no text condition
    assert ids(shop.browse(text="backpack")) == []  # 17 has no name: never matches a text
    page = shop.browse({"gender": "Women"}, text="red")
    assert ids(page) == [11, 13, 18]
    assert page.facets["gender"] == {"Women": 3, "Men": 1}  # the red-named products of every gender


def test_browse_filters_match_like_every_filter(shop):
    """browse selects exactly the rows Filter.mask selects: case-insensitive, values as text, any column."""
    from fashionrec.catalog.filters import Filter

    for where in ({"gender": "women"}, {"year": 2012}, {"year": "2013", "gender": ["MEN", "Women"]},
                  {"id": [11, "18"]}, {"productDisplayName": "black office heels"}, {"season": ["Fall", "Spring"]}):
        expected = shop.products["id"][Filter.from_where(where).mask(shop.products)].tolist()
        assert ids(shop.browse(where, per_page=200)) == expected, where


def test_browse_facets_match_pandas_counts(tmp_path):
    """On a random catalog with missing values: every facet against counts computed independently with pandas."""
    rng = np.random.default_rng(3)
    n = 700
    choices = {"gender": ["Women", "Men", "Boys", None], "articleType": ["Heels", "Flats", "Tshirts", "Jeans", None],
               "baseColour": ["Red", "Blue", "Black", "White", None], "season": ["Summer", "Winter", None]}
    products = pd.DataFrame({"id": pd.array(np.arange(n) * 3 + 5, dtype="Int64")})
    for column, values in choices.items():
        products[column] = pd.array(rng.choice(np.array(values, dtype=object), size=n), dtype="string")
    words = np.array(["Red", "blue", "Slim", "T-shirt", "heels", "classic", "Jeans"], dtype=object)
    names = [" ".join(rng.choice(words, size=3)) for _ in range(n)]
    products["productDisplayName"] = pd.array([None if i % 50 == 0 else x for i, x in enumerate(names)], dtype="string")
    write_index(tmp_path / "r", np.zeros((n, 2), np.float32), products, {"backbone": "fake", "weights": "none",
                                                                         "preprocessing": {}})
    rec = Recommender.load(tmp_path / "r")

    def expected_counts(attribute, where, text):
        keep = pd.Series(True, index=products.index)
        for word in text.split():
            keep &= products["productDisplayName"].str.contains(word, case=False, regex=False).fillna(False)
        for other, values in where.items():
            if other != attribute:
                keep &= products[other].str.lower().isin([v.lower() for v in values]).fillna(False)
        counts = products.loc[keep, attribute].value_counts()
        return dict(sorted(((str(v), int(c)) for v, c in counts.items()), key=lambda vc: (-vc[1], vc[0])))

    cases = [({}, ""), ({"gender": ["Women"]}, ""), ({"gender": ["Women", "boys"], "articleType": ["Heels"]}, ""),
             ({"baseColour": ["Red", "Blue"], "season": ["Winter"]}, "slim"), ({}, "red T-SHIRT"),
             ({"articleType": ["Jeans", "Flats"]}, "classic heels")]
    for where, text in cases:
        page = rec.browse(where, text=text, per_page=200)
        assert set(page.facets) == set(choices)
        for attribute in choices:
            assert list(page.facets[attribute].items()) == list(expected_counts(attribute, where, text).items()), \
                (where, text, attribute)
        keep = pd.Series(True, index=products.index)
        for attribute, values in where.items():
            keep &= products[attribute].str.lower().isin([v.lower() for v in values]).fillna(False)
        for word in text.split():
            keep &= products["productDisplayName"].str.contains(word, case=False, regex=False).fillna(False)
        assert page.total == int(keep.sum())
        assert ids(page) == products["id"][keep].tolist()[:200]


def test_browse_rows_are_plain_products(shop):
    import json

    page = shop.browse({"id": [16, 17]})
    first = page.products[0]
    assert isinstance(first, Product)
    dumped = json.loads(page.model_dump_json())
    assert list(dumped) == ["total", "page", "per_page", "pages", "products", "facets"]
    assert list(dumped["products"][0]) == ["id", "gender", "masterCategory", "subCategory", "articleType",
                                           "baseColour", "season", "year", "usage", "productDisplayName", "image"]
    assert dumped["products"][0]["baseColour"] is None and dumped["products"][0]["year"] == 2013
    assert dumped["products"][1]["year"] is None and dumped["products"][1]["productDisplayName"] is None
    assert dumped["products"][0]["id"] == 16 and "image_signature" not in dumped["products"][0]
    assert shop.product("17").model_dump() == dumped["products"][1]  # one product, the same shape
    with pytest.raises(UnknownProductError):
        shop.product(99)


def test_browse_errors(shop):
    with pytest.raises(InvalidKError, match="page must be at least 1, got 0"):
        shop.browse(page=0)
    with pytest.raises(InvalidKError, match="per_page must be a whole number"):
        shop.browse(per_page="many")
    with pytest.raises(InvalidKError, match="per_page must be at most 200, got 201"):
        shop.browse(per_page=201)
    assert shop.browse(page="2", per_page="5").page == 2  # numbers from a query string
    with pytest.raises(FilterError, match="unknown attribute 'colour'"):
        shop.browse({"colour": "Red"})
    with pytest.raises(FilterError, match="text must be words"):
        shop.browse(text=["red"])


def test_browse_from_sixteen_threads_gives_the_single_threaded_answers(shop):
    from concurrent.futures import ThreadPoolExecutor

    fresh = Recommender.load(shop.index.path)  # nothing made yet: the first calls race to make the tables
    calls = [({}, None, 1, 48), ({"gender": "Women"}, "heels", 1, 2), ({"articleType": ["Heels", "Tshirts"]}, None, 2, 2),
             ({"gender": "Men", "baseColour": "red"}, "t", 1, 48), ({"year": 2012}, "red", 1, 1), ({}, "shirt", 1, 10)]

    def call(n):
        where, text, page, per_page = calls[n % len(calls)]
        return fresh.browse(where, text=text, page=page, per_page=per_page).model_dump()

    with ThreadPoolExecutor(16) as pool:
        threaded = list(pool.map(call, range(300)))
    serial = [shop.browse(w, text=t, page=p, per_page=pp).model_dump() for w, t, p, pp in calls]
    for n, got in enumerate(threaded):
        assert got == serial[n % len(calls)]


@pytest.mark.skipif(not Path("/work/shared/fashion-product-images-small/styles.csv").is_file(),
                    reason="the Kaggle catalog is not on this machine")
def test_browse_the_real_catalog_like_pandas(tmp_path):
    """44k real products: the Women + Heels/Flats page and its facets against pandas."""
    from fashionrec.catalog import load_catalog

    catalog = load_catalog("/work/shared/fashion-product-images-small")
    products = catalog.products.drop(columns=["has_image"])
    write_index(tmp_path / "real", np.zeros((len(products), 1), np.float32), products,
                {"backbone": "fake", "weights": "none", "preprocessing": {}})
    rec = Recommender.load(tmp_path / "real")
    page = rec.browse({"gender": "Women", "articleType": ["Heels", "Flats"]}, text="black", per_page=200)
    text = products["productDisplayName"].str.contains("black", case=False, regex=False).fillna(False)
    women = products["gender"].str.casefold().eq("women").fillna(False)
    shoes = products["articleType"].str.casefold().isin(["heels", "flats"]).fillna(False)
    assert page.total == int((text & women & shoes).sum()) > 0
    assert ids(page) == products["id"][text & women & shoes].tolist()[:200]
    assert page.facets["articleType"] == products["articleType"][text & women].value_counts().to_dict()
    assert page.facets["gender"] == products["gender"][text & shoes].value_counts().to_dict()
    assert page.facets["usage"] == products["usage"][text & women & shoes].value_counts().to_dict()


# ---------------------------------------------------------------- describing the index


def test_info(shop, caplog):
    import json
    import os

    from fashionrec.evaluation import evaluate_index

    info = shop.info()
    assert isinstance(info, IndexInfo)
    assert (info.backbone, info.weights, info.dim, info.count, info.engine) == ("fake", "none", 2, 8, "exact")
    assert (info.preprocessing, info.runtime, info.precision) == ("crop", "torch", "fp32")
    assert info.created == shop.index.manifest["created"] and info.updated == shop.index.manifest["updated"]
    assert info.catalog_root == str(shop.catalog_root)
    assert info.catalog_where == {"gender": ["Women", "Men", "Unisex"]}
    assert info.evaluation is None  # no evaluation.json in the folder

    summary = evaluate_index(shop.index, k=2).summary().model_dump(mode="json")
    target = shop.index.path / "evaluation.json"
    target.write_text(json.dumps(summary))
    assert shop.info().evaluation.model_dump(mode="json") == summary
    assert json.loads(shop.info().model_dump_json())["evaluation"] == summary

    summary["k"] = 1  # a newer file is read again
    target.write_text(json.dumps(summary))
    os.utime(target, ns=(1, 1))
    assert shop.info().evaluation.k == 1

    target.write_text("{not json")
    with caplog.at_level("WARNING", logger="fashionrec.recommend.service"):
        assert shop.info().evaluation is None
    assert "ignoring" in caplog.text and "evaluation.json" in caplog.text


def test_result_model_straight_from_the_recommender(rec):
    """recommendations() / image_recommendations() give exactly the JSON of the DataFrame path."""
    from fashionrec.recommend import Recommendations

    for pid in [int(i) for i in rec.products["id"][:6]]:
        for kwargs in ({}, {"where": {"gender": "Women"}, "metric": "cosine", "k": 4}):
            direct = rec.recommendations(pid, **kwargs).to_json()
            frame = rec.similar(pid, **kwargs)
            assert direct == Recommendations.from_frame(rec.query_product(pid), frame).to_json()
    picture = Image.new("RGB", (4, 4), (10, 200, 30))
    direct = rec.image_recommendations(picture, k=3, label="shoe.jpg").to_dict()
    assert direct["query"] == {"image": "shoe.jpg"}
    assert direct == Recommendations.from_frame({"image": "shoe.jpg"}, rec.similar_to_image(picture, k=3)).to_dict()
    product = rec.query_product(int(rec.products["id"][6]))
    assert product["image"] is None and product["link"] is None  # missing values are None, not NaN or <NA>
    assert all(not hasattr(v, "dtype") for v in product.values())  # plain Python values


def test_recommendations_many_equal_one_at_a_time(rec):
    ids = [int(i) for i in rec.products["id"]]
    for kwargs in ({"k": 5}, {"k": 3, "where": {"gender": "Men"}, "metric": "cosine"}):
        many = rec.recommendations_many(ids, **kwargs)
        assert [a.to_dict() for a in many] == [rec.recommendations(i, **kwargs).to_dict() for i in ids]
    assert rec.recommendations_many([]) == []
    with pytest.raises(UnknownProductError):
        rec.recommendations_many([ids[0], 424242])

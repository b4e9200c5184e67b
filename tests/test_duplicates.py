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


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_collapse_keeps_k_different_looking_results_and_reports_the_collapsed(catalog_vectors, metric):
    X, ids, _ = catalog_vectors
    X64 = X.astype(np.float64)

    def dist(a, b):
        if metric == "cosine":
            return 1 - X64[a] @ X64[b] / (np.linalg.norm(X64[a]) * np.linalg.norm(X64[b]))
        return float(np.linalg.norm(X64[a] - X64[b]))

    query = 10  # the chain 10 - 20 - 21: 20 is a near copy of the query, 21 of 20 but not of the query
    threshold = 1.25 * dist(10, 20)
    assert dist(20, 21) <= threshold < dist(10, 21)
    ranking = sorted((r for r in range(60) if r != query), key=lambda r: (dist(query, r), r))
    got = collapse(X[ranking], threshold, 5, metric=metric, query=X[query])
    kept = [ranking[p] for p in got.kept]
    assert len(kept) == 5 and [ranking[p] for p in got.query_twins] == [20]
    assert kept[0] == 21  # its only near copy (20) was hidden as the query's: 21 is a result
    for i, a in enumerate(kept):  # no two kept results within the threshold of each other
        assert all(dist(a, b) > threshold for b in kept[i + 1 :])
    for a, twins in zip(kept, got.twins):
        assert all(dist(a, ranking[p]) <= threshold for p in twins)
    reported = sorted(got.kept + [p for t in got.twins for p in t] + got.query_twins)
    assert reported == list(range(len(reported)))  # a prefix of the ranking: nothing skipped unreported
    assert got.kept == sorted(got.kept)  # in ranking order
    assert collapse(X[ranking], threshold, 60, metric=metric, query=X[query]).kept[:5] == got.kept  # k only cuts

    photo = collapse(X[ranking], threshold, 5, metric=metric)  # no query product: 20 kept, its copy 21 collapsed
    assert ranking[photo.kept[0]] == 20 and [ranking[p] for p in photo.twins[0]] == [21] and photo.query_twins == []


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


def test_auto_groups_use_the_threshold_estimated_from_nearest_neighbours(catalog_vectors):
    from fashionrec.recommend.duplicates import auto_duplicate_groups, auto_threshold, estimate_threshold

    X, ids, attrs = catalog_vectors
    engine = create_engine("exact").build(X, ids, attrs)
    threshold, why = auto_threshold(nearest_distances(engine, X, ids))
    assert estimate_threshold(engine, X, ids) == (threshold, why)  # fewer products than the sample: all of them
    scan = auto_duplicate_groups(engine, X, ids, block_size=16)
    assert scan.threshold == threshold and scan.notes["threshold"] == why
    reference = duplicate_groups(engine, X, ids, threshold)
    assert [g.pairs for g in scan.groups] == [g.pairs for g in reference.groups]
    sampled, reason = estimate_threshold(engine, X, ids, sample=20, seed=1)
    assert estimate_threshold(engine, X, ids, sample=20, seed=1)[0] == sampled  # the same on every call
    assert "measured on 20 products drawn at random" in reason
    rows = np.sort(np.random.default_rng(1).choice(60, size=20, replace=False))
    assert sampled == auto_threshold(nearest_distances(engine, X, ids, rows=rows))[0]


# ---------------------------------------------------------------------- dedupe through the Recommender

LOOKS = 12
SINGLES = 200


@pytest.fixture
def look_index(tmp_path):
    """An index of 12 looks under 1 to 6 product ids each (near copies), one look under 70 ids, 200 single looks.

    Most products have no copy, as in a real catalog: the automatic threshold
    is a fraction of the median distance to the nearest other product. Ids are
    not in row order.
    """
    from PIL import Image

    from fashionrec.index import write_index

    rng = np.random.default_rng(11)
    centres = rng.normal(size=(LOOKS + 1 + SINGLES, 16)) * 5
    copies = [1 + i % 6 for i in range(LOOKS)] + [70] + [1] * SINGLES
    rows, look_of = [], []
    for look, n in enumerate(copies):
        for _ in range(n):
            rows.append(centres[look] + rng.normal(size=16) * 0.01)
            look_of.append(look)
    X = np.asarray(rows, dtype=np.float32)
    n = len(X)
    ids = rng.permutation(np.arange(500, 500 + 3 * n, 3))
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    for pid, look in zip(ids, look_of):
        Image.new("RGB", (6, 8), (20 * look % 256, 90, 160)).save(root / "images" / f"{pid}.png")
    products = pd.DataFrame({
        "id": pd.array(ids, dtype="Int64"),
        "articleType": ["Heels" if look % 2 else "Flats" for look in look_of],
        "productDisplayName": [f'Look {look} "copy" <b>' for look in look_of],
        "image": [f"images/{pid}.png" for pid in ids],
    })
    write_index(tmp_path / "index", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {},
                                                  "catalog": {"root": str(root)}})
    return tmp_path / "index", dict(zip(ids.tolist(), look_of))


def _vectors_by_id(rec):
    return dict(zip(rec.products["id"].astype(int).tolist(), np.asarray(rec.index.embeddings, dtype=np.float64)))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_dedupe_returns_k_different_looking_products(look_index, metric):
    from fashionrec.recommend import Recommender

    path, look_of = look_index
    rec = Recommender.load(path)
    vec = _vectors_by_id(rec)
    threshold = rec.duplicate_threshold(metric)

    def dist(a, b):
        if metric == "cosine":
            return 1 - vec[a] @ vec[b] / (np.linalg.norm(vec[a]) * np.linalg.norm(vec[b]))
        return float(np.linalg.norm(vec[a] - vec[b]))

    for query in [i for i, look in look_of.items() if look < LOOKS][::5]:
        plain = rec.similar(query, k=len(rec), metric=metric)
        deduped = rec.similar(query, k=5, metric=metric, dedupe=True)
        kept = deduped["id"].tolist()
        assert len(kept) == 5
        assert len({look_of[i] for i in kept} | {look_of[query]}) == 6  # five other looks, each once
        for i, a in enumerate(kept):
            assert all(dist(a, b) > threshold for b in kept[i + 1 :])  # no two within the threshold
            assert dist(query, a) > threshold
        for a, twins in zip(kept, deduped["duplicates"]):
            assert all(dist(a, t) <= threshold for t in twins)
        query_twins = deduped.attrs["query_duplicates"]
        assert sorted(query_twins) == sorted(i for i, look in look_of.items() if look == look_of[query] and i != query)
        reported = set(kept) | {t for twins in deduped["duplicates"] for t in twins} | set(query_twins)
        assert reported == set(plain["id"].tolist()[: len(reported)])  # nothing skipped without being reported
        by_id = dict(zip(plain["id"].tolist(), plain["distance"].tolist()))
        assert deduped["distance"].tolist() == [by_id[i] for i in kept]  # the same distances, in ranking order


def test_dedupe_ranks_more_candidates_when_copies_fill_the_first_ones(look_index):
    from fashionrec.recommend import Recommender

    path, look_of = look_index
    rec = Recommender.load(path)
    big = next(i for i, look in look_of.items() if look == LOOKS)  # a look under 70 ids: more than 4k + 16
    got = rec.similar(big, k=3, dedupe=True)
    assert len(got) == 3 and len(got.attrs["query_duplicates"]) == 69
    everything = rec.similar(big, k=1000, dedupe=True)
    assert len(everything) == LOOKS + SINGLES  # every other look once, then the ranking runs out
    nearest_other = rec.similar(big, k=5, where={"articleType": "Flats"}, dedupe=True)
    assert all(look_of[i] % 2 == 0 for i in nearest_other["id"])  # filters hold as without dedupe


def test_dedupe_in_the_result_model_and_for_photos_and_batches(look_index):
    from PIL import Image

    from fashionrec.recommend import Recommender

    path, look_of = look_index
    vectors = np.asarray(Recommender.load(path).index.embeddings)

    class CopyOfRow:  # "embeds" any picture as a catalog vector: a photo of that product
        def embed(self, images):
            return vectors[[3] * len(images)] + np.float32(0.001)

    rec = Recommender.load(path, embedder=CopyOfRow())
    query = int(rec.products["id"].iloc[3])
    answer = rec.recommendations(query, k=4, dedupe=True).to_dict()
    assert [r["id"] for r in answer["results"]] == rec.similar(query, k=4, dedupe=True)["id"].tolist()
    assert all("duplicates" in r for r in answer["results"]) and "duplicates" in answer["query"]
    plain = rec.recommendations(query, k=4).to_dict()
    assert "duplicates" not in plain["query"] and all("duplicates" not in r for r in plain["results"])
    many = rec.recommendations_many([query, int(rec.products["id"].iloc[40])], k=4, dedupe=True)
    assert many[0].to_dict() == answer
    photo = rec.image_recommendations(Image.new("RGB", (6, 8)), k=3, dedupe=True).to_dict()
    twins = sorted(i for i, look in look_of.items() if look == look_of[query] and i != query)
    first = photo["results"][0]
    assert first["id"] in twins + [query]  # a photo's own product is what it looks for: kept, not hidden
    assert sorted(first["duplicates"] + [first["id"]]) == sorted(twins + [query])
    assert "duplicates" not in photo["query"]
    with pytest.raises(Exception, match="dedupe_threshold must be a finite distance"):
        rec.similar(query, dedupe=True, dedupe_threshold=-1)
    wide = rec.similar(query, k=len(rec), dedupe=True, dedupe_threshold=1e9)
    assert wide.empty and len(wide.attrs["query_duplicates"]) == len(rec) - 1  # everything is a copy of the query


def test_recommend_dedupe_on_the_command_line(look_index):
    import json

    from typer.testing import CliRunner

    from fashionrec.cli import app

    path, look_of = look_index
    query = next(i for i, look in look_of.items() if look == 5)
    runner = CliRunner()
    result = runner.invoke(app, ["recommend", str(path), "--id", str(query), "-k", "3", "--dedupe", "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert len(answer["query"]["duplicates"]) == 5 and len({look_of[r["id"]] for r in answer["results"]}) == 3
    table = runner.invoke(app, ["recommend", str(path), "--id", str(query), "--dedupe"], catch_exceptions=False)
    assert "left out as copies of the query product" in " ".join(table.stdout.split())
    alone = runner.invoke(app, ["recommend", str(path), "--id", str(query), "--dedupe-threshold", "1"])
    assert alone.exit_code != 0 and "--dedupe-threshold needs --dedupe" in (alone.stderr or alone.output)


def test_web_switch_collapses_near_duplicates(look_index):
    from fastapi.testclient import TestClient

    from fashionrec.recommend import Recommender
    from fashionrec.web import create_app

    path, look_of = look_index
    rec = Recommender.load(path)
    query = next(i for i, look in look_of.items() if look == 5)
    with TestClient(create_app(rec)) as client:
        api = client.get(f"/api/products/{query}/similar", params={"k": 3, "dedupe": "true"}).json()
        assert api == rec.recommendations(query, k=3, dedupe=True).to_dict()
        assert "duplicates" not in client.get(f"/api/products/{query}/similar", params={"k": 3}).json()["query"]
        page = client.get(f"/products/{query}", params={"k": 3, "dedupe": "1"}).text
        assert "5 near-duplicates of this product hidden" in page
        assert 'name="dedupe" value="1" checked' in page
        off = client.get(f"/products/{query}", params={"k": 3}).text
        assert "near-duplicates of this product hidden" not in off and 'name="dedupe" value="1">' in off


def test_duplicates_page_pictures_the_groups_largest_first(look_index, tmp_path):
    import json

    from typer.testing import CliRunner

    from fashionrec.cli import app

    path, look_of = look_index
    out = tmp_path / "dups"
    result = CliRunner().invoke(app, ["duplicates", str(path), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "groups.json").read_text())
    sizes = [g["size"] for g in report["group_list"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 70
    assert sorted(sorted(g["ids"]) for g in report["group_list"]) == sorted(
        sorted(i for i in look_of if look_of[i] == look) for look in set(look_of.values())
        if sum(1 for v in look_of.values() if v == look) > 1)
    page = (out / "groups.html").read_text()
    assert page.index("Group 1: 70 products") < page.index("Group 2: 6 products")
    assert "Look 12 &#34;copy&#34; &lt;b&gt;" in page and "<b>\"copy\"" not in page  # names escaped
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert len(pictures) == sum(sizes) and all(f'src="pictures/{name}"' in page for name in pictures)
    assert "pictures of the groups" in " ".join(result.stdout.split())

"""End to end on the real Kaggle catalog (../shared), with real pretrained features.

The original design's subset — women's footwear, 2,829 products with an image —
embedded with the offline ImageNet backbone, then queried through the CLI and the
Python API. Skipped where the shared catalog is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fashionrec.cli import app
from fashionrec.evaluation import evaluate_photo_folder, evaluate_photo_queries
from fashionrec.index import IndexFolder
from fashionrec.recommend import Recommender

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def wf_index(tmp_path_factory, shared_catalog_loaded):
    catalog = shared_catalog_loaded.root
    out = tmp_path_factory.mktemp("wf") / "index"
    result = runner.invoke(
        app,
        ["index", str(catalog), "--out", str(out), "--backbone", "efficientnet_lite0",
         "--where", "gender=Women", "--where", "masterCategory=Footwear"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out


def test_index_has_2829_float32_1280d_vectors(wf_index):
    embeddings = np.load(wf_index / "embeddings.npy", mmap_mode="r")
    assert embeddings.dtype == np.float32 and embeddings.shape == (2829, 1280)
    products = pd.read_parquet(wf_index / "products.parquet")
    assert products.columns[0] == "id" and len(products) == 2829
    assert set(products["gender"]) == {"Women"} and set(products["masterCategory"]) == {"Footwear"}
    manifest = json.loads((wf_index / "manifest.json").read_text())
    assert manifest["backbone"] == "efficientnet_lite0" and manifest["count"] == 2829
    assert len(manifest["skipped"]) == 7  # women's footwear rows without an image file


def test_neighbours_share_article_type_far_above_chance(wf_index):
    index = IndexFolder.load(wf_index)
    x = np.asarray(index.embeddings, dtype=np.float64)
    labels = index.products["articleType"].to_numpy()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(x), 300, replace=False)
    sq = (x**2).sum(1)
    same, chance = [], []
    for row in rows:
        d = sq - 2 * x @ x[row] + sq[row]
        d[row] = np.inf
        nearest = np.argsort(d, kind="stable")[:10]
        same.append(np.mean(labels[nearest] == labels[row]))
        chance.append((np.sum(labels == labels[row]) - 1) / (len(x) - 1))
    assert np.mean(same) > 0.6
    assert np.mean(same) > 2 * np.mean(chance)


def test_recommend_json_is_the_exact_top_k(wf_index):
    index = IndexFolder.load(wf_index)
    x = np.asarray(index.embeddings, dtype=np.float64)
    ids = index.products["id"].to_numpy()
    for row in (0, 1234, 2828):
        result = runner.invoke(app, ["recommend", str(wf_index), "--id", str(ids[row]), "-k", "10", "--json"])
        assert result.exit_code == 0, result.output
        got = [r["id"] for r in json.loads(result.stdout)["results"]]
        d = np.sqrt(((x - x[row]) ** 2).sum(1))
        order = sorted((dist, int(pid)) for dist, pid in zip(d, ids) if pid != ids[row])
        assert got == [pid for _, pid in order[:10]]


def test_where_filters_on_the_real_index(wf_index):
    rec = Recommender.load(wf_index)
    query = int(rec.products.loc[rec.products["articleType"] == "Heels", "id"].iloc[0])
    results = rec.similar(query, k=8, where={"articleType": ["Flats", "Sandals"], "baseColour": "Black"})
    assert len(results) == 8
    assert set(results["articleType"]) <= {"Flats", "Sandals"} and set(results["baseColour"]) == {"Black"}
    assert results["distance"].is_monotonic_increasing


def test_evaluate_precision_matches_an_independent_computation(wf_index):
    result = runner.invoke(app, ["evaluate", str(wf_index), "-k", "10", "--json"])
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)["overall"]["precision@10"]

    x = np.load(wf_index / "embeddings.npy").astype(np.float64)
    labels = pd.read_parquet(wf_index / "products.parquet")["articleType"].to_numpy()
    ids = pd.read_parquet(wf_index / "products.parquet")["id"].to_numpy()
    sq = (x**2).sum(1)
    d = sq[:, None] - 2 * x @ x.T + sq[None, :]
    np.fill_diagonal(d, np.inf)
    precisions = []
    for row in range(len(x)):
        if np.sum(labels == labels[row]) < 2:
            continue  # no other relevant product: not evaluable
        nearest = np.lexsort((ids, d[row]))[:10]
        precisions.append(np.mean(labels[nearest] == labels[row]))
    assert reported == pytest.approx(np.mean(precisions), abs=1e-9)


def test_a_new_photo_of_a_product_finds_it_first(wf_index):
    result = evaluate_photo_queries(Recommender.load(wf_index), n=60, k=10, seed=1)
    assert result.n_queries == 60
    chance = result.chance["hit@1"]
    assert result.overall["hit@1"] >= 0.5 > 100 * chance
    assert result.overall["recall@10"] >= result.overall["hit@1"]


def test_real_photos_find_their_product_once_brought_to_the_catalog_look(wf_index, shared_photos):
    """Issue 13's bar: the development photos of women's footwear find their own product first >= 98 % of the time."""
    rec = Recommender.load(wf_index)
    matched = evaluate_photo_folder(rec, shared_photos, k=10)
    assert matched.n_queries == 304 and matched.not_in_index == matched.n_photos - 304
    assert matched.overall["hit@1"] >= 0.98
    assert matched.kind_accuracy["articleType"] >= 0.95
    as_they_are = evaluate_photo_folder(rec, shared_photos, k=10, match_catalog=False)
    assert as_they_are.overall["hit@1"] < matched.overall["hit@1"] - 0.3  # the photos' size was the gap


def test_recommend_by_photo_file_and_url(wf_index, shared_catalog, tmp_path):
    import http.server
    import threading
    from functools import partial

    index = IndexFolder.load(wf_index)
    product = int(index.products["id"].iloc[100])
    photo = shared_catalog / "images" / f"{product}.jpg"
    result = runner.invoke(app, ["recommend", str(wf_index), "--image", str(photo), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["results"][0]
    assert first["id"] == product and first["distance"] < 1e-3

    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_catalog / "images"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{product}.jpg"
        png = tmp_path / "by-url.png"
        result = runner.invoke(app, ["recommend", str(wf_index), "--image", url, "-k", "3", "--json", "--plot", str(png),
                                     "--allow-private-urls"])  # 127.0.0.1 stands for an intranet host
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["id"] == product
    assert png.stat().st_size > 10_000

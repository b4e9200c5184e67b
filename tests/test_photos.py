"""Photo queries: the catalog's look measured and applied, a folder of real photos evaluated, the kind predicted."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from fashionrec.catalog.look import CatalogLook
from fashionrec.cli import app
from fashionrec.errors import FashionrecError, QueryError
from fashionrec.evaluation import evaluate_photo_folder
from fashionrec.index import write_index
from fashionrec.recommend import Recommender, predict_kind


def jpeg_file(path, size, colour=(200, 30, 30), quality=75, subsampling=2):
    image = Image.new("RGB", size, (255, 255, 255))
    w, h = size
    image.paste(Image.new("RGB", (w // 2, h // 2), colour), (w // 4, h // 4))
    image.save(path, "JPEG", quality=quality, subsampling=subsampling)
    return path


# ---------------------------------------------------------------------- the catalog's look


@pytest.mark.parametrize("quality, subsampling", [(75, 2), (60, 0), (92, 1)])
def test_look_is_measured_from_the_catalog_files(tmp_path, quality, subsampling):
    paths = [jpeg_file(tmp_path / f"{i}.jpg", (60, 80), quality=quality, subsampling=subsampling) for i in range(12)]
    paths.append(jpeg_file(tmp_path / "odd.jpg", (60, 60)))  # a few catalog images have another size
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    look = CatalogLook.measure(paths + [tmp_path / "broken.jpg", tmp_path / "missing.jpg"])
    assert (look.width, look.height) == (60, 80) and look.share == pytest.approx(12 / 13)
    assert look.quality == quality and look.subsampling == subsampling
    assert look.background == (255, 255, 255) and look.sampled == 13
    assert CatalogLook.from_dict(json.loads(json.dumps(look.to_dict()))) == look
    assert CatalogLook.measure([tmp_path / "broken.jpg"]) is None
    png = tmp_path / "p.png"
    Image.new("RGB", (30, 40), (0, 0, 0)).save(png)
    assert CatalogLook.measure([png]) == CatalogLook(30, 40, None, None, (0, 0, 0), 1.0, 1)  # not JPEG: no quality


def test_look_brings_a_photo_to_the_catalog_size_and_compression(tmp_path):
    look = CatalogLook(60, 80, quality=75, subsampling=2)
    big = Image.open(jpeg_file(tmp_path / "big.jpg", (224, 224), quality=95))
    made = look.apply(big)
    assert made.size == (60, 80) and made.mode == "RGB" and big.size == (224, 224)
    plain = big.resize((60, 80), Image.Resampling.LANCZOS, reducing_gap=None)
    encoded = io.BytesIO()
    plain.save(encoded, "JPEG", quality=75, subsampling=2)
    assert np.array_equal(np.asarray(made), np.asarray(Image.open(encoded).convert("RGB")))  # resized, then JPEG
    assert not np.array_equal(np.asarray(made), np.asarray(plain))
    thumbnail = Image.open(jpeg_file(tmp_path / "t.jpg", (60, 80)))
    assert np.array_equal(np.asarray(look.apply(thumbnail)), np.asarray(thumbnail.convert("RGB")))  # not re-encoded
    clear = Image.new("RGBA", (120, 160), (0, 0, 0, 0))  # a cut-out product on a transparent background
    clear.paste(Image.new("RGBA", (40, 40), (10, 20, 200, 255)), (40, 60))
    on_white = np.asarray(CatalogLook(60, 80, quality=None, background=(255, 255, 255)).apply(clear))
    assert on_white[0, 0].tolist() == [255, 255, 255] and on_white[40, 30].tolist() == [10, 20, 200]
    with pytest.raises(ValueError, match="width must be a whole number of pixels"):
        CatalogLook(0, 80)


# ---------------------------------------------------------------------- a tiny index whose features are colours


class MeanColour:
    """A stand-in embedder: the mean RGB colour of a picture, in [0, 1]; it records the sizes it was given."""

    def __init__(self):
        self.sizes = []

    def embed(self, images):
        self.sizes += [im.size for im in images]
        return np.array([np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0) / 255
                         for im in images], np.float32)


TYPES = ["Heels", "Flats", "Heels", "Sandals", "Heels", "Flats"]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 40, 210), (230, 210, 20), (200, 40, 40), (40, 180, 60)]


@pytest.fixture
def colour_index(tmp_path):
    """Six products, each a coloured square on white, 60 x 80 JPEG; features are mean colours."""
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    ids = [101, 102, 103, 104, 105, 106]
    for pid, colour in zip(ids, COLOURS):
        jpeg_file(root / "images" / f"{pid}.jpg", (60, 80), colour)
    products = pd.DataFrame({"id": ids, "articleType": TYPES, "baseColour": ["Red", "Green", "Blue", "Yellow", "Red",
                                                                            "Green"],
                             "image": [f"images/{pid}.jpg" for pid in ids]})
    embedder = MeanColour()
    vectors = embedder.embed([Image.open(root / "images" / f"{pid}.jpg") for pid in ids])
    write_index(tmp_path / "index", vectors, products, {"backbone": "fake", "weights": "none", "preprocessing": {},
                                                        "catalog": {"root": str(root)}})
    return tmp_path / "index", root


def test_photo_queries_are_brought_to_the_catalog_look_unless_asked_not_to(colour_index, tmp_path, caplog):
    path, root = colour_index
    embedder = MeanColour()
    rec = Recommender.load(path, embedder=embedder)
    photo = jpeg_file(tmp_path / "photo.jpg", (300, 300), COLOURS[2], quality=95)
    assert rec.similar_to_image(photo, k=1)["id"].tolist() == [103]
    assert embedder.sizes[-1] == (60, 80)  # measured on load from the catalog images: this index records no look
    assert rec.catalog_look.quality == 75
    rec.similar_to_image(photo, k=1, match_catalog=False)
    assert embedder.sizes[-1] == (300, 300)
    off = Recommender.load(path, embedder=embedder, match_catalog=False)
    off.similar_to_image(photo, k=1)
    assert embedder.sizes[-1] == (300, 300)
    moved = Recommender.load(path, embedder=embedder, catalog_root=tmp_path / "nowhere")  # no catalog images
    with caplog.at_level("WARNING"):
        moved.similar_to_image(photo, k=1)
    assert embedder.sizes[-1] == (300, 300) and "embedded as they are" in caplog.text


def test_a_recorded_look_is_used_as_recorded(colour_index, tmp_path):
    from fashionrec.index import update_manifest

    path, _ = colour_index
    update_manifest(path, catalog_look=CatalogLook(30, 40, quality=50).to_dict())
    embedder = MeanColour()
    rec = Recommender.load(path, embedder=embedder)
    rec.similar_to_image(jpeg_file(tmp_path / "p.jpg", (200, 200)), k=1)
    assert embedder.sizes[-1] == (30, 40) and rec.catalog_look.quality == 50


# ---------------------------------------------------------------------- a folder of real photos


def test_a_folder_of_photos_is_evaluated_per_product_and_article_type(colour_index, tmp_path):
    path, _ = colour_index
    photos = tmp_path / "photos"
    photos.mkdir()
    for pid, colour in ((101, COLOURS[0]), (103, COLOURS[2]), (104, COLOURS[3])):
        jpeg_file(photos / f"{pid}.jpg", (224, 224), colour)
    jpeg_file(photos / "105.jpg", (224, 224), COLOURS[0])  # looks like 101 (same red): 105 ranks second
    jpeg_file(photos / "999.jpg", (224, 224))  # a product the index does not hold
    (photos / "106.jpg").write_bytes(b"broken")  # unreadable
    (photos / "notes.txt").write_text("not a photo")
    rec = Recommender.load(path, embedder=MeanColour())
    result = evaluate_photo_folder(rec, photos, k=2)
    assert result.n_photos == 6 and result.not_in_index == 1 and result.n_queries == 4
    assert [u["file"] for u in result.unreadable] == ["106.jpg"]
    assert result.ranks == {101: 1, 103: 1, 104: 1, 105: 2}
    assert result.overall == pytest.approx({"hit@1": 0.75, "recall@2": 1.0, "MRR": (1 + 1 + 1 + 0.5) / 4})
    assert result.chance["hit@1"] == pytest.approx(1 / 6)
    heels = next(row for row in result.per_class if row["articleType"] == "Heels")
    assert heels["n_queries"] == 3 and heels["hit@1"] == pytest.approx(2 / 3)
    assert result.per_class[0]["articleType"] == "Heels"  # most photos first
    assert result.kind_accuracy["articleType"] == 1.0  # 105's photo is nearest 101, a Heels too
    within = evaluate_photo_folder(rec, photos, k=2, where={"articleType": "Heels"})
    assert within.n_queries == 3 and within.not_in_index == 3 and within.n_products == 3  # 104, 106 not Heels
    summary = result.summary().model_dump(mode="json")
    assert summary["n_queries"] == 4 and summary["per_class"][0]["articleType"] == "Heels"
    with pytest.raises(FashionrecError, match="photo folder .* not found"):
        evaluate_photo_folder(rec, tmp_path / "none")
    empty = tmp_path / "empty"
    empty.mkdir()
    jpeg_file(empty / "42.jpg", (10, 10))
    with pytest.raises(QueryError, match="none of the 1 photos .* is of a product searched"):
        evaluate_photo_folder(rec, empty)


def test_evaluate_photos_on_the_command_line(make_catalog, tmp_path):
    """The CLI end to end with a real (tiny) backbone: real-photo block in --json, a table otherwise."""
    from fashionrec.catalog import load_catalog
    from fashionrec.embedding import ImageEmbedder, build_index
    from tiny_backbone import register

    register()
    folder = make_catalog(24, corrupt=0, missing=0)
    catalog = load_catalog(folder)
    build_index(catalog, tmp_path / "idx", embedder=ImageEmbedder("tiny-test", runtime="torch"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for pid, rel in list(zip(catalog.products["id"], catalog.products["image"]))[:4]:
        with Image.open(folder / rel) as image:
            image.resize((240, 240)).save(photos / f"{pid}.jpg", quality=92)  # larger and square: a "real photo"
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "idx"), "--photos", str(photos), "-k", "3", "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    block = json.loads(result.stdout)["real_photos"]
    assert block["n_queries"] == 4 and block["match_catalog"] is True and set(block["overall"]) == {
        "hit@1", "recall@3", "MRR"}
    assert 0 <= block["overall"]["hit@1"] <= 1 and "articleType" in block["kind_accuracy"]
    off = runner.invoke(app, ["evaluate", str(tmp_path / "idx"), "--photos", str(photos), "--no-match-catalog-size",
                              "--json"], catch_exceptions=False)
    assert json.loads(off.stdout)["real_photos"]["match_catalog"] is False
    table = runner.invoke(app, ["evaluate", str(tmp_path / "idx"), "--photos", str(photos)], catch_exceptions=False)
    assert "real photos of" in " ".join(table.stdout.split()) and "kind predicted" in table.stdout
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "idx"), "--photos", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "photo folder" in (missing.stderr or missing.output)


# ---------------------------------------------------------------------- the kind of product a photo shows


def test_kind_is_the_clear_nearest_products_else_a_vote_by_rank():
    def nearest(*rows):
        return [{"distance": d, "articleType": t, "baseColour": c} for d, t, c in rows]

    clear = predict_kind(nearest((1.0, "Flats", "Red"), (3.0, "Heels", "Black"), (3.1, "Heels", "Black"),
                                 (3.2, "Heels", "Black")))
    assert clear.clear_match and clear.values == {"articleType": "Flats", "baseColour": "Red"}
    vote = predict_kind(nearest((2.9, "Flats", "Red"), (3.0, "Heels", "Black"), (3.1, "Heels", None),
                                (3.2, "Heels", "Black"), (3.3, "Heels", "Black"), (3.4, "Heels", "Black")))
    assert not vote.clear_match and vote.values == {"articleType": "Heels", "baseColour": "Black"}
    weights = [1 / rank for rank in range(1, 7)]
    assert vote.shares["articleType"] == pytest.approx(sum(weights[1:]) / sum(weights))
    assert vote.shares["baseColour"] == pytest.approx((sum(weights[1:]) - weights[2]) / sum(weights))  # None: no vote
    nearest_wins = predict_kind(nearest((2.9, "Flats", "Red"), (3.0, "Heels", "Black"), (3.1, "Heels", "Black")))
    assert nearest_wins.values["articleType"] == "Flats"  # weight 1 against 1/2 + 1/3
    close = predict_kind(nearest((2.9, "Flats", "Red"), (3.0, "Heels", "Black")))
    assert close.values["articleType"] == "Flats"  # a tie by weight: the nearest wins
    assert predict_kind(nearest((1.0, None, None))).values == {"articleType": None, "baseColour": None}


def test_prefer_kind_lists_the_predicted_article_type_first(colour_index, tmp_path):
    path, _ = colour_index
    rec = Recommender.load(path, embedder=MeanColour())
    photo = jpeg_file(tmp_path / "red.jpg", (200, 200), (225, 35, 30))  # nearest: 101, then 105 (both Heels)
    plain = rec.similar_to_image(photo, k=6)
    first = rec.similar_to_image(photo, k=6, prefer_kind=True)
    assert first.attrs["predicted"]["values"]["articleType"] == "Heels"
    kinds = first["articleType"].tolist()
    assert kinds[:3] == ["Heels"] * 3 and "Heels" not in kinds[3:]  # every Heels first, then the others
    assert sorted(first["id"]) == sorted(plain["id"])  # the same products, reordered
    heels = first[first["articleType"] == "Heels"]
    assert heels["distance"].is_monotonic_increasing  # nearest first within the kind
    narrowed = rec.similar_to_image(photo, k=6, prefer_kind=True, where={"articleType": ["Flats", "Sandals"]})
    assert set(narrowed["articleType"]) == {"Flats", "Sandals"}  # a filter on the type is the user's: kept
    answer = rec.image_recommendations(photo, k=2, prefer_kind=True).to_dict()
    assert answer["query"]["predicted"]["values"]["articleType"] == "Heels"
    assert "predicted" not in rec.image_recommendations(photo, k=2).to_dict()["query"]


def test_web_photo_search_says_what_the_photo_looks_like_and_lists_that_kind_first(colour_index, tmp_path):
    from fastapi.testclient import TestClient

    from fashionrec.web import create_app

    path, _ = colour_index
    rec = Recommender.load(path, embedder=MeanColour())
    photo = jpeg_file(tmp_path / "red.jpg", (200, 200), (225, 35, 30)).read_bytes()
    with TestClient(create_app(rec)) as client:
        page = client.post("/search", files={"image": ("red.jpg", photo, "image/jpeg")}, data={"k": "6"}).text
        assert "Looks like: <b>Heels</b>" in page and "Heels first" in page  # "Same kind first" is on by default
        assert 'name="prefer_kind" value="1" checked' in page
        off = client.post("/search", files={"image": ("red.jpg", photo, "image/jpeg")},
                          data={"k": "6", "prefer_kind": "0"}).text
        assert "Looks like:" not in off and 'name="prefer_kind" value="1">' in off
        api = client.post("/api/similar", params={"k": 3, "prefer_kind": "true"},
                          files={"image": ("red.jpg", photo, "image/jpeg")}).json()
        assert api["query"]["predicted"]["values"]["articleType"] == "Heels"
        assert [r["articleType"] for r in api["results"]] == ["Heels"] * 3
        plain = client.post("/api/similar", params={"k": 3, "match_catalog": "false"},
                            files={"image": ("red.jpg", photo, "image/jpeg")}).json()
        assert "predicted" not in plain["query"]

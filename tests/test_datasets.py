"""Generated data sets: drawn product pictures, and the sample catalog (Kaggle layout, determinism,
distinct kinds, defects on demand, the cached copy)."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from fashionrec.catalog import ORIGINAL_SUBSET, STYLE_COLUMNS, load_catalog, where_mask
from fashionrec.errors import CatalogError, FashionrecError
from fashionrec.datasets import COLOURS, DEFAULT_N, KINDS, draw_product, make_sample_catalog, sample_catalog_path


@pytest.fixture(scope="module")
def default_sample(tmp_path_factory) -> tuple[Path, float]:
    """The default-size sample (n=320, seed=0) written once, with its generation time."""
    dest = tmp_path_factory.mktemp("sample") / "catalog"
    started = time.perf_counter()
    make_sample_catalog(dest)
    return dest, time.perf_counter() - started


def _raw_rows(root: Path) -> list[list[str]]:
    with open(root / "styles.csv", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _silhouettes(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Binary object masks (non-white pixels) of every image, and the articleType of each."""
    products = load_catalog(root).products
    masks = [
        (np.asarray(Image.open(root / rel).convert("L"), dtype=np.int16) < 246).ravel() for rel in products["image"]
    ]
    return np.stack(masks).astype(np.float32), products["articleType"].to_numpy(dtype=str)


# --------------------------------------------------------------------------- layout


def test_layout_is_kaggle_and_loads(make_catalog):
    root = make_catalog(24, corrupt=0, missing=0)
    rows = _raw_rows(root)
    assert rows[0] == list(STYLE_COLUMNS)
    assert len(rows) == 25 and all(len(r) == len(STYLE_COLUMNS) for r in rows)
    assert (root / "styles.csv").read_bytes().count(b'"') == 0  # unquoted, like the Kaggle file

    files = sorted((root / "images").iterdir())
    assert len(files) == 24 and all(f.suffix == ".jpg" for f in files)
    for f in files:
        with Image.open(f) as image:
            assert image.format == "JPEG" and image.size == (60, 80) and image.mode == "RGB"
            assert image.getpixel((0, 0)) >= (245, 245, 245)  # white background, like the real photos

    catalog = load_catalog(root)
    products = catalog.products
    assert list(products.columns[: len(STYLE_COLUMNS)]) == list(STYLE_COLUMNS)
    assert len(catalog) == 24 and catalog.n_with_image == 24 and catalog.repaired_lines == ()
    assert products["id"].is_unique and str(products["year"].dtype) == "Int64"
    assert set(products["id"].astype(str) + ".jpg") == {f.name for f in files}


def test_attributes_are_consistent_kaggle_values(default_sample):
    root, _ = default_sample
    products = load_catalog(root).products
    assert len(products) == DEFAULT_N
    assert products[list(STYLE_COLUMNS)].notna().all().all()
    # each articleType always has the same, Kaggle-style master/sub category
    for article, group in products.groupby("articleType"):
        kind = KINDS[article]
        assert set(group["masterCategory"]) == {kind.master_category}
        assert set(group["subCategory"]) == {kind.sub_category}
        assert set(group["gender"]) <= set(kind.genders)
        assert set(group["baseColour"]) <= set(kind.colours)
    heels = products[products["articleType"] == "Heels"]
    assert set(zip(heels["gender"], heels["masterCategory"], heels["subCategory"])) == {("Women", "Footwear", "Shoes")}
    assert set(products["masterCategory"]) == {"Footwear", "Apparel", "Accessories"}
    assert set(products["season"]) <= {"Summer", "Fall", "Winter", "Spring"}
    assert products["year"].between(2007, 2019).all()
    assert set(products["articleType"]) == set(KINDS)  # every kind present, evenly spread
    assert products["articleType"].value_counts().agg(["min", "max"]).tolist() in ([24, 25], [25, 25], [24, 24])
    # the display name reads like Kaggle's: "<Brand> <Gender> <Colour> <noun>"
    for _, p in products.head(50).iterrows():
        assert f" {p['gender']} {p['baseColour']} " in p["productDisplayName"]
    # the original design's subset (women's footwear) is well populated
    assert where_mask(products, ORIGINAL_SUBSET).sum() >= 50


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(make_catalog):
    a, b = make_catalog(20, seed=3), make_catalog(20, seed=3)
    c = make_catalog(20, seed=4)
    assert (a / "styles.csv").read_bytes() == (b / "styles.csv").read_bytes()
    names = sorted(p.name for p in (a / "images").iterdir())
    assert names == sorted(p.name for p in (b / "images").iterdir())
    assert all((a / "images" / n).read_bytes() == (b / "images" / n).read_bytes() for n in names)
    assert (a / "styles.csv").read_bytes() != (c / "styles.csv").read_bytes()


def test_draw_product_is_deterministic_and_validates():
    one = draw_product("Heels", "Red", np.random.default_rng(7))
    two = draw_product("Heels", "Red", np.random.default_rng(7))
    other = draw_product("Heels", "Red", np.random.default_rng(8))
    assert one.size == (60, 80) and one.mode == "RGB"
    assert np.array_equal(np.asarray(one), np.asarray(two))
    assert not np.array_equal(np.asarray(one), np.asarray(other))  # per-item jitter
    assert draw_product("Watches", "Gold", np.random.default_rng(0), size=(120, 160)).size == (120, 160)
    # the drawn colour is the named one: red dominates the non-white pixels
    pixels = np.asarray(one).reshape(-1, 3).astype(int)
    fg = pixels[pixels.min(axis=1) < 200]
    assert fg[:, 0].mean() > fg[:, 1].mean() + 60
    with pytest.raises(CatalogError, match="Heels"):
        draw_product("Spaceship", "Red", np.random.default_rng(0))
    with pytest.raises(CatalogError, match="Black"):
        draw_product("Heels", "Ultraviolet", np.random.default_rng(0))
    with pytest.raises(CatalogError, match=r"\(0, 80\)"):
        draw_product("Heels", "Red", np.random.default_rng(0), size=(0, 80))


def test_every_kind_and_colour_draws():
    rng = np.random.default_rng(0)
    for article in KINDS:
        for colour in COLOURS:
            image = np.asarray(draw_product(article, colour, rng))
            covered = (image.min(axis=2) < 246).mean()
            assert 0.04 < covered < 0.7, (article, colour, covered)  # something drawn, background remains


# --------------------------------------------------------------------------- distinct kinds


def test_kinds_are_visually_distinct(default_sample, make_catalog):
    """Silhouettes: items of a kind differ less from each other than from any other kind,
    and a nearest-centroid rule learned on one sample recognises the kind in another."""
    root, _ = default_sample
    masks, kinds = _silhouettes(root)
    names = sorted(set(kinds))
    for kind in names:
        own = masks[kinds == kind]
        within = np.abs(own[:, None] - own[None]).mean(axis=-1)[np.triu_indices(len(own), 1)].mean()
        between = min(np.abs(own[:, None] - masks[kinds == other][None]).mean() for other in names if other != kind)
        assert within < between, f"{kind}: within-kind difference {within:.3f} >= between-kind {between:.3f}"

    centroids = np.stack([masks[kinds == k].mean(axis=0) for k in names])
    held_out, truth = _silhouettes(make_catalog(130, corrupt=0, missing=0, seed=1))
    distances = ((held_out[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    predicted = np.array(names)[distances.argmin(axis=1)]
    accuracy = (predicted == truth).mean()
    assert accuracy >= 0.85, f"nearest-centroid accuracy {accuracy:.2f} (chance {1 / len(names):.2f})"


# --------------------------------------------------------------------------- defects on demand


def test_corrupt_missing_and_malformed_rows(make_catalog):
    root = make_catalog(30, corrupt=2, missing=3, malformed_rows=4)
    rows = _raw_rows(root)
    long_rows = [r for r in rows[1:] if len(r) > len(STYLE_COLUMNS)]
    assert len(long_rows) == 4  # unquoted commas split the name into extra fields

    catalog = load_catalog(root)
    products = catalog.products
    assert len(catalog) == 30
    assert len(catalog.repaired_lines) == 4
    repaired = products.iloc[[line - 2 for line in catalog.repaired_lines]]
    assert repaired["productDisplayName"].str.contains(", ").all()
    assert set(repaired["id"].astype(str)) == {r[0] for r in long_rows}

    assert (~products["has_image"]).sum() == 3
    assert products.loc[~products["has_image"], "image"].isna().all()
    unreadable = []
    for rel in products.loc[products["has_image"], "image"]:
        try:
            with Image.open(root / rel) as image:
                image.load()
        except (UnidentifiedImageError, OSError):
            unreadable.append(rel)
    assert len(unreadable) == 2
    # corrupt and missing never overlap: the 2 unreadable files exist
    assert all((root / rel).is_file() for rel in unreadable)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "positive"),
        ({"n": 5, "corrupt": 6}, "corrupt"),
        ({"n": 5, "corrupt": 3, "missing": 3}, "corrupt \\+ missing"),
        ({"n": 5, "malformed_rows": -1}, "malformed_rows"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(FashionrecError, match=message):
        make_sample_catalog(tmp_path / "c", **kwargs)


def test_refuses_a_non_empty_destination(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(CatalogError, match="not empty"):
        make_sample_catalog(tmp_path, 5)
    assert (tmp_path / "keep.txt").read_text() == "user data"


# --------------------------------------------------------------------------- cache


def test_sample_catalog_path_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONREC_CACHE", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "sample-v1"
    results: list[Path] = []
    errors: list[BaseException] = []

    def call():
        try:
            results.append(sample_catalog_path())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]  # concurrent first use
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 2
    root = results[0]
    assert len(load_catalog(root)) == DEFAULT_N
    assert len(list((root / "images").glob("*.jpg"))) == DEFAULT_N
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["sample-v1"]  # no temp folders left

    stamp = (root / "styles.csv").stat().st_mtime_ns
    assert sample_catalog_path() == root
    assert (root / "styles.csv").stat().st_mtime_ns == stamp  # reused, not regenerated


def test_sample_catalog_path_replaces_an_incomplete_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONREC_CACHE", str(tmp_path))
    half = tmp_path / "sample-v1"
    (half / "images").mkdir(parents=True)
    (half / "styles.csv").write_text("id,gender\n1,Men\n")  # e.g. left by an old, interrupted version
    root = sample_catalog_path()
    assert root == half and len(load_catalog(root)) == DEFAULT_N
    assert [p.name for p in tmp_path.iterdir()] == ["sample-v1"]

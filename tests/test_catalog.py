"""Catalog layer: reading styles.csv as Kaggle ships it, folders, KaggleHub, filters."""

from __future__ import annotations

import csv
import time

import pandas as pd
import pytest

from fashionrec.catalog import (
    KAGGLE_DATASETS,
    ORIGINAL_SUBSET,
    STYLE_COLUMNS,
    Filter,
    coerce_id,
    download,
    find_catalog_root,
    kaggle_cached_copy,
    load_catalog,
    parse_where,
    read_styles,
    where_mask,
)
from fashionrec.errors import CatalogError, DownloadError, FilterError

HEADER = ",".join(STYLE_COLUMNS)


def write_styles(folder, lines, header=HEADER):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "styles.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- the real file


@pytest.fixture
def real(shared_catalog_loaded):
    return shared_catalog_loaded


def test_real_file_keeps_every_row(real):
    assert len(real) == 44_446
    assert real.products["id"].is_unique
    assert list(real.products.columns[: len(STYLE_COLUMNS)]) == list(STYLE_COLUMNS)


def test_real_file_repairs_unquoted_commas(real, shared_catalog):
    assert len(real.repaired_lines) == 22
    name = real.products.loc[real.products["id"] == 44065, "productDisplayName"].iloc[0]
    assert name == "Boss Men Perfume, After Shave Balm and Shower Gel Set"
    # Each repaired line really has extra fields in the raw file, and the repaired
    # name is those fields joined back with their commas.
    with open(shared_catalog / "styles.csv", newline="", encoding="utf-8") as handle:
        raw = {i + 1: row for i, row in enumerate(csv.reader(handle))}
    for line in real.repaired_lines:
        fields = raw[line]
        assert len(fields) > len(STYLE_COLUMNS)
        row = real.products.loc[real.products["id"] == int(fields[0])].iloc[0]
        assert row["productDisplayName"] == ",".join(fields[len(STYLE_COLUMNS) - 1 :])


def test_real_file_reads_na_as_missing(real, shared_catalog):
    raw = pd.read_csv(shared_catalog / "styles.csv", dtype=str, keep_default_na=False, on_bad_lines="skip")
    na_usage = set(raw.loc[raw["usage"] == "NA", "id"].astype(int))
    assert len(na_usage) > 100
    usage = real.products.set_index("id")["usage"]
    assert usage.loc[sorted(na_usage)].isna().all()
    assert (real.products["usage"] == "NA").sum() == 0
    assert str(real.products["year"].dtype) == "Int64"
    assert real.products["year"].isna().sum() == 1  # one empty year, row kept


def test_real_file_flags_missing_images(real, shared_catalog):
    assert real.n_with_image == 44_072
    without = real.products.loc[~real.products["has_image"], "id"]
    assert len(without) == 374
    assert not any((shared_catalog / "images" / f"{i}.jpg").exists() for i in without.head(20))
    path = real.image_path(int(real.products.loc[real.products["has_image"], "id"].iloc[0]))
    assert path.is_file()


def test_real_file_original_subset(real):
    subset = real.select(ORIGINAL_SUBSET)
    assert set(subset.products["gender"]) == {"Women"}
    assert set(subset.products["masterCategory"]) == {"Footwear"}
    expected = ((real.products["gender"] == "Women") & (real.products["masterCategory"] == "Footwear")).sum()
    assert len(subset) == expected
    assert subset.n_with_image == 2_829


# --------------------------------------------------------------------------- malformed input


def test_row_with_too_few_fields_names_the_line(tmp_path):
    folder = write_styles(tmp_path / "cat", ["1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Shirt", "2,Men,Apparel"])
    with pytest.raises(CatalogError, match=r"styles\.csv, line 3: 3 fields, expected 10"):
        load_catalog(folder)


def test_duplicate_ids_are_rejected_with_lines(tmp_path):
    folder = write_styles(
        tmp_path / "cat",
        ["7,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A", "7,Men,Apparel,Topwear,Shirts,Red,Fall,2011,Casual,B"],
    )
    with pytest.raises(CatalogError, match=r"duplicate product id 7 on lines \[2, 3\]"):
        load_catalog(folder)


def test_non_integer_id_and_year_name_the_line(tmp_path):
    folder = write_styles(tmp_path / "a", ["x1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A"])
    with pytest.raises(CatalogError, match=r"line 2: id 'x1' is not an integer"):
        load_catalog(folder)
    folder = write_styles(tmp_path / "b", ["1,Men,Apparel,Topwear,Shirts,Blue,Fall,20x1,Casual,A"])
    with pytest.raises(CatalogError, match=r"line 2: year '20x1' is not an integer"):
        load_catalog(folder)


def test_unreadable_file_is_reported(tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "styles.csv").write_bytes(HEADER.encode() + b"\n1,Men,\xff\xfe,Topwear,Shirts,Blue,Fall,2011,Casual,A\n")
    with pytest.raises(CatalogError, match=r"styles\.csv.*not UTF-8"):
        read_styles(folder / "styles.csv")
    (folder / "styles.csv").write_text("")
    with pytest.raises(CatalogError, match="is empty"):
        read_styles(folder / "styles.csv")


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="neither styles.csv nor image files"):
        load_catalog(tmp_path / "empty")


def test_quoted_commas_and_empty_fields(tmp_path):
    folder = write_styles(
        tmp_path / "cat",
        [
            '1,Men,Apparel,Topwear,Shirts,Blue,,2011,NA,"Quoted, properly"',
            "2,Women,Footwear,Shoes,Heels,,Summer,,Casual,Unquoted, with, commas",
        ],
    )
    cat = load_catalog(folder)
    rows = cat.products.set_index("id")
    assert rows.loc[1, "productDisplayName"] == "Quoted, properly"
    assert rows.loc[2, "productDisplayName"] == "Unquoted, with, commas"
    assert cat.repaired_lines == (3,)
    assert pd.isna(rows.loc[1, "season"]) and pd.isna(rows.loc[1, "usage"])
    assert pd.isna(rows.loc[2, "baseColour"]) and pd.isna(rows.loc[2, "year"])
    assert not cat.products["has_image"].any()


# --------------------------------------------------------------------------- layouts


def test_generated_catalog_flags_missing_and_corrupt_images(make_catalog):
    folder = make_catalog(24, corrupt=1, missing=1)
    cat = load_catalog(folder)
    assert len(cat) == 24
    assert cat.n_with_image == 23  # the corrupt file exists; only the missing one is flagged here
    assert all(p is None or p.is_file() for p in cat.image_paths())


def test_kagglehub_layout_one_level_down(make_catalog, tmp_path):
    folder = make_catalog(12, corrupt=0, missing=0)
    wrapper = tmp_path / "versions" / "1"
    wrapper.mkdir(parents=True)
    (wrapper / "myntradataset").symlink_to(folder, target_is_directory=True)
    assert find_catalog_root(wrapper) == wrapper / "myntradataset"
    assert len(load_catalog(wrapper)) == 12


def test_images_csv_links_are_attached(tmp_path):
    folder = write_styles(tmp_path / "cat", ["5,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A"])
    (folder / "images.csv").write_text("filename,link\n5.jpg,http://example.test/5.jpg\n")
    cat = load_catalog(folder)
    assert cat.products["link"].iloc[0] == "http://example.test/5.jpg"


def test_plain_image_folder_with_and_without_csv(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a1", "b2"):
        Image.new("RGB", (8, 8), "red").save(folder / f"{name}.png")
    cat = load_catalog(folder)
    assert cat.source == "folder"
    assert sorted(cat.products["id"]) == ["a1", "b2"]
    assert cat.n_with_image == 2
    (folder / "meta.csv").write_text("id,colour\nb2,Blue\nc3,Green\na1,Red\n")
    cat = load_catalog(folder)
    assert list(cat.products["id"]) == ["b2", "c3", "a1"]
    assert cat.attributes == ["colour"]
    assert list(cat.products["has_image"]) == [True, False, True]
    assert cat.select({"colour": "red"}).products["id"].tolist() == ["a1"]


# --------------------------------------------------------------------------- KaggleHub


def test_download_fails_fast_when_kaggle_is_unreachable(monkeypatch):
    monkeypatch.setattr("fashionrec.catalog.hub.KAGGLE_HOST", ("127.0.0.1", 1))
    started = time.perf_counter()
    with pytest.raises(DownloadError, match=r"network unreachable \(no connection to 127\.0\.0\.1:1\).*fashionrec demo"):
        download("small", timeout=2)
    assert time.perf_counter() - started < 5
    with pytest.raises(DownloadError, match="unknown variant 'medium'; expected one of small, full"):
        download("medium")


def test_newest_kagglehub_cached_copy_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    assert kaggle_cached_copy("small") is None
    versions = tmp_path / "kagglehub" / "datasets" / KAGGLE_DATASETS["small"] / "versions"
    for version in ("2", "10"):
        write_styles(versions / version / "myntradataset", ["1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,A"])
    assert kaggle_cached_copy("small") == versions / "10" / "myntradataset"
    assert kaggle_cached_copy("full") is None


# --------------------------------------------------------------------------- filters


def test_parse_where():
    assert parse_where(["gender=Women", "articleType=Heels", "articleType=Flats"]) == {
        "gender": ["Women"],
        "articleType": ["Heels", "Flats"],
    }
    with pytest.raises(FilterError, match="filter 'gender' is not KEY=VALUE"):
        parse_where(["gender"])


def test_where_mask_semantics():
    products = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "gender": pd.array(["Women", "Men", "women", None], dtype="string"),
            "year": pd.array([2011, 2012, 2012, 2012], dtype="Int64"),
        }
    )
    assert where_mask(products, {"gender": "Women"}).tolist() == [True, False, True, False]
    assert where_mask(products, {"gender": ["Men", "Women"], "year": 2012}).tolist() == [False, True, True, False]
    assert where_mask(products, {"year": "2011"}).tolist() == [True, False, False, False]
    with pytest.raises(CatalogError, match="unknown attribute 'colour'.*known attributes: id, gender, year"):
        where_mask(products, {"colour": "Red"})


def test_filter_is_one_value_whatever_its_spelling():
    """Equal filters (order of attributes or values, case) are equal and hash equal: they key caches."""
    a = Filter.from_where({"gender": "women", "articleType": ["Heels", "flats"]})
    b = Filter.from_where({"articleType": ["FLATS", "heels", "Heels"], "gender": ["Women"]})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Filter.from_where({"gender": "women"})
    assert a.to_dict() == {"gender": ["women"], "articleType": ["Heels", "flats"]}  # as given, duplicates dropped
    assert a.attributes == ["gender", "articleType"]
    assert Filter.from_where(None) is None and Filter.from_where({}) is None
    assert Filter.from_where(a) is a


def test_filter_errors_say_what_was_expected():
    columns = ["id", "gender", "image", "has_image"]
    with pytest.raises(FilterError, match="unknown attribute 'colour' in filter; known attributes: id, gender$"):
        Filter.from_where({"colour": "Red"}, columns)
    with pytest.raises(FilterError, match="must be a mapping of attribute to value.*got str 'gender=Women'"):
        Filter.from_where("gender=Women")
    with pytest.raises(FilterError, match="'gender' allows no value"):
        Filter.from_where({"gender": []})
    with pytest.raises(FilterError, match=r"'gender': value None is not a text or a number"):
        Filter.from_where({"gender": [None]})
    with pytest.raises(CatalogError):  # a FilterError is also a CatalogError and a QueryError
        Filter.from_where({"colour": "Red"}, columns)


def test_coerce_id():
    ints = pd.Series([1, 2], dtype="Int64")
    assert coerce_id("2", ints) == 2
    with pytest.raises(CatalogError, match="not an integer"):
        coerce_id("abc", ints)
    assert coerce_id(5, pd.Series(["5"], dtype="string")) == "5"

"""EDA report: counts checked against independent pandas counts, files, escaping, filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fashionrec.catalog import load_catalog
from fashionrec.eda import COUNT_COLUMNS, MISSING, EdaReport, summarize, write_report
from fashionrec.errors import CatalogError

SUMMARY_KEYS = {
    "catalog", "source", "where", "total_products", "with_image", "without_image", "repaired_rows",
    "repaired_lines", "attributes", "counts", "distinct", "gender_x_masterCategory",
}


# --------------------------------------------------------------------------- independent counts


def read_styles_independently(csv_path: Path) -> pd.DataFrame:
    """styles.csv read with plain pandas (not fashionrec's reader): every field as text,
    rows with unquoted commas rejoined into the last field, "" and "NA" as missing."""
    header = pd.read_csv(csv_path, nrows=0).columns.tolist()
    width = len(header)
    frame = pd.read_csv(
        csv_path,
        dtype=str,
        keep_default_na=False,
        engine="python",
        on_bad_lines=lambda fields: fields[: width - 1] + [",".join(fields[width - 1 :])],
    )
    return frame.replace({"": None, "NA": None})


def independent_counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    values = frame[column].str.strip().fillna(MISSING)
    return {str(k): int(v) for k, v in values.value_counts().items()}


def check_counts(summary: dict, frame: pd.DataFrame) -> None:
    """Every count in the summary equals the independent count; top-N lists hold the largest."""
    assert summary["total_products"] == len(frame)
    for column, top in COUNT_COLUMNS.items():
        if column not in frame.columns:
            assert column not in summary["counts"]
            continue
        expected = independent_counts(frame, column)
        got = summary["counts"][column]
        assert list(got.values()) == sorted(got.values(), reverse=True), f"{column} not sorted by count"
        for value, count in got.items():
            assert expected.get(value) == count, f"{column}={value!r}: {count} vs independent {expected.get(value)}"
        assert len(got) == min(top or len(expected), len(expected))
        left_out = [c for v, c in expected.items() if v not in got]
        if left_out:
            assert max(left_out) <= min(got.values())
        assert summary["distinct"][column] == frame[column].dropna().nunique()
    if {"gender", "masterCategory"} <= set(frame.columns):
        crossed = pd.crosstab(frame["gender"].fillna(MISSING), frame["masterCategory"].fillna(MISSING))
        nested = summary["gender_x_masterCategory"]
        assert sum(sum(row.values()) for row in nested.values()) == len(frame)
        for gender, row in nested.items():
            for category, count in row.items():
                assert crossed.loc[gender, category] == count


# --------------------------------------------------------------------------- real catalog


@pytest.fixture(scope="module")
def shared_report(shared_catalog_loaded, tmp_path_factory) -> EdaReport:
    return write_report(shared_catalog_loaded, tmp_path_factory.mktemp("eda-shared"))


@pytest.fixture(scope="module")
def shared_frame(shared_catalog_loaded) -> pd.DataFrame:
    return read_styles_independently(shared_catalog_loaded.root / "styles.csv")


@pytest.mark.slow
def test_shared_catalog_headline_numbers(shared_report):
    report = shared_report
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    assert set(summary) == SUMMARY_KEYS
    assert summary["total_products"] == 44_446
    assert summary["with_image"] == 44_072
    assert summary["without_image"] == 374
    assert summary["repaired_rows"] == 22
    assert summary["where"] is None
    assert summary["counts"]["gender"] == {"Men": 22_165, "Women": 18_632, "Unisex": 2_164, "Boys": 830, "Girls": 655}
    assert len(summary["counts"]["articleType"]) == 20 and len(summary["counts"]["baseColour"]) == 15
    assert summary["counts"]["usage"][MISSING] == 317
    assert all(len(k) == 4 and k.isdigit() for k in summary["counts"]["year"] if k != MISSING)


@pytest.mark.slow
def test_shared_catalog_counts_match_independent_pandas(shared_report, shared_frame):
    report = shared_report
    check_counts(report.summary, shared_frame)
    images = shared_report.summary["catalog"]
    on_disk = {p.stem for p in (Path(images) / "images").glob("*.jpg")}
    assert report.summary["with_image"] == shared_frame["id"].isin(on_disk).sum()


@pytest.mark.slow
def test_shared_catalog_report_files(shared_report):
    report = shared_report
    pngs = sorted(report.out_dir.glob("*.png"))
    assert len(pngs) >= 4
    assert {p.name for p in pngs} >= {
        "gender.png", "masterCategory.png", "articleType.png", "baseColour.png", "season.png", "usage.png",
        "year.png", "gender_x_masterCategory.png", "contact_sheet.png",
    }
    assert set(report.charts) == set(pngs)
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width >= 300 and image.height >= 150
    page = report.html.read_text(encoding="utf-8")
    assert report.html.name == "index.html"
    for png in pngs:
        assert f"src='{png.name}'" in page
    assert "44,446" in page and "/shared/fashion-product-images-small" in page
    assert "22 row(s)" in page and "374 product(s) have no image" in page
    assert not list(report.out_dir.glob("*.tmp")) and not list(report.out_dir.glob(".*"))


@pytest.mark.slow
def test_shared_catalog_where_filter(shared_catalog_loaded, shared_frame, tmp_path):
    where = {"gender": "Women", "masterCategory": "Footwear"}
    subset = shared_catalog_loaded.select(where)
    report = write_report(subset, tmp_path, where=where)
    expected = shared_frame[(shared_frame["gender"] == "Women") & (shared_frame["masterCategory"] == "Footwear")]
    assert report.summary["total_products"] == len(expected) == 2_836
    assert report.summary["where"] == {"gender": ["Women"], "masterCategory": ["Footwear"]}
    check_counts(report.summary, expected)
    assert "Filtered to products where gender = Women; masterCategory = Footwear" in report.html.read_text()


# --------------------------------------------------------------------------- generated catalogs


def test_sample_counts_match_independent_pandas(make_catalog, tmp_path):
    root = make_catalog(40, corrupt=1, missing=2, malformed_rows=3)
    report = write_report(load_catalog(root), tmp_path / "report")
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    assert summary == report.summary
    assert set(summary) == SUMMARY_KEYS
    assert (summary["with_image"], summary["without_image"], summary["repaired_rows"]) == (38, 2, 3)
    check_counts(summary, read_styles_independently(root / "styles.csv"))
    assert summary["catalog"] == str(root)


def test_missing_values_counted_under_missing_key(make_catalog, tmp_path):
    root = make_catalog(12, corrupt=0, missing=0)
    styles = root / "styles.csv"
    lines = styles.read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    fields[8] = "NA"  # usage, written as the real file writes it
    fields[7] = ""  # year
    lines[1] = ",".join(fields)
    styles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = summarize(load_catalog(root))
    assert summary["counts"]["usage"][MISSING] == 1
    assert summary["counts"]["year"][MISSING] == 1
    check_counts(summary, read_styles_independently(styles))


def test_html_escapes_catalog_strings(make_catalog, tmp_path):
    root = make_catalog(12, corrupt=0, missing=0)
    styles = root / "styles.csv"
    lines = styles.read_text(encoding="utf-8").splitlines()
    evil = "<script>alert('x')</script>"
    for i in range(1, len(lines)):  # every product: the contact sheet's name list shows some of them
        fields = lines[i].split(",")
        fields[9] = f"{evil} & Co"
        if i == 1:
            fields[4] = "<b>Boots</b>"  # an attribute value, shown in chart tables
        lines[i] = ",".join(fields)
    styles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = write_report(load_catalog(root), tmp_path / "r", title="<i>Spring & Summer</i>")
    page = report.html.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>Boots</b>" not in page and "<i>Spring" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;Boots&lt;/b&gt;" in page
    assert "&lt;i&gt;Spring &amp; Summer&lt;/i&gt;" in page


def test_where_filter_on_sample_and_validation(make_catalog, tmp_path):
    root = make_catalog(60, corrupt=0, missing=0)
    catalog = load_catalog(root)
    frame = read_styles_independently(root / "styles.csv")
    where = {"gender": ["women"], "masterCategory": "Footwear"}  # case-insensitive, like the CLI
    expected = frame[(frame["gender"] == "Women") & (frame["masterCategory"] == "Footwear")]
    assert len(expected) > 0
    # passing the filter applies it; passing the filtered catalog too changes nothing
    a = summarize(catalog, where=where)
    b = summarize(catalog.select(where), where=where)
    assert a == b
    assert a["where"] == {"gender": ["women"], "masterCategory": ["Footwear"]}
    check_counts(a, expected)
    assert a["counts"]["gender"] == {"Women": len(expected)}
    report = write_report(catalog, tmp_path / "r", where=where)
    assert report.summary == a
    nothing = write_report(catalog, tmp_path / "none", where={"gender": "Nobody"})
    assert nothing.summary["total_products"] == 0 and nothing.charts == []
    assert "nothing matches the filter" in nothing.html.read_text(encoding="utf-8")
    with pytest.raises(CatalogError, match="colour"):
        summarize(catalog, where={"colour": "Red"})


def test_unreadable_images_are_skipped_in_contact_sheet(make_catalog, tmp_path):
    # 12 products: every masterCategory group is smaller than a contact-sheet row, so all are tried
    root = make_catalog(12, corrupt=5, missing=1)
    report = write_report(load_catalog(root), tmp_path / "r")
    assert len(report.unreadable_images) == 5
    assert (tmp_path / "r" / "contact_sheet.png").is_file()
    assert "5 image file(s)" in report.html.read_text(encoding="utf-8")
    assert report.summary["with_image"] == 11  # a corrupt file still counts as an image file


def test_plain_image_folder_without_attributes(make_catalog, tmp_path):
    src = make_catalog(10, corrupt=0, missing=0)
    folder = tmp_path / "plain"
    shutil.copytree(src / "images", folder)
    catalog = load_catalog(folder)
    assert catalog.attributes == []
    report = write_report(catalog, tmp_path / "r")
    assert report.summary["counts"] == {} and report.summary["gender_x_masterCategory"] == {}
    assert report.summary["total_products"] == 10 and report.summary["with_image"] == 10
    assert [p.name for p in report.charts] == ["contact_sheet.png"]
    assert "no attribute columns" in report.html.read_text(encoding="utf-8")


def test_rewrites_an_existing_report(make_catalog, tmp_path):
    out = tmp_path / "r"
    root = make_catalog(12, corrupt=0, missing=0)
    first = write_report(load_catalog(root), out)
    plain = tmp_path / "plain"
    shutil.copytree(root / "images", plain)
    second = write_report(load_catalog(plain), out)  # one chart only: quick
    assert second.summary_json == first.summary_json and second.html == first.html
    assert json.loads(first.summary_json.read_text())["counts"] == {}
    assert "no attribute columns" in first.html.read_text(encoding="utf-8")
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]

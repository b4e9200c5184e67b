"""Views: the EDA report (counts checked against independent pandas counts, charts, the page),
pictures of recommendations, and the page templates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from page_checks import assert_not_blank, check_pictures, png_pixels, read_page
from PIL import Image

from fashionrec.catalog import load_catalog
from fashionrec.datasets import make_sample_catalog
from fashionrec.errors import CatalogError, FashionrecError, QueryError
from fashionrec.index import write_index
from fashionrec.recommend import Recommender
from fashionrec.reports import EdaReport, plot_recommendations, recommendation_figure, summarize, write_report
from fashionrec.reports.charts import BASE_COLOURS
from fashionrec.reports.html import render
from fashionrec.reports.pictures import PLACEHOLDER_GREY, wrap_caption
from fashionrec.reports.summary import COUNT_COLUMNS, MISSING

SUMMARY_KEYS = {
    "catalog", "source", "where", "total_products", "with_image", "without_image", "repaired_rows",
    "repaired_lines", "attributes", "counts", "distinct", "gender_x_masterCategory",
}
ATTRIBUTE_CHARTS = ["gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage", "year"]


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


def check_page_matches_report(report: EdaReport):
    """The page parses, shows every chart beside its table, and links only to files that exist."""
    page = read_page(report.html)
    assert page.meta.get("viewport", "").startswith("width=device-width")
    assert page.meta.get("charset") == "utf-8"
    check_pictures(page)
    assert [page.local_file(i["src"]) for i in page.images] == [p.resolve() for p in report.charts]
    summary_links = [a for a in page.links if a["href"] == "summary.json"]
    assert summary_links and page.local_file("summary.json") == report.summary_json.resolve()
    assert f"{report.summary['total_products']:,} products" in page.text  # the first headline card
    return page


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
    assert {p.stem for p in pngs} == {*ATTRIBUTE_CHARTS, "gender_x_masterCategory", "contact_sheet"}
    assert set(report.charts) == set(pngs)
    for png in pngs:
        pixels = png_pixels(png)
        assert pixels.shape[1] >= 500 and pixels.shape[0] >= 250
        assert_not_blank(pixels)
    # 20 articleType bars on a horizontal chart: taller than the 5-bar gender chart
    assert png_pixels(report.out_dir / "articleType.png").shape[0] > png_pixels(report.out_dir / "gender.png").shape[0]
    page = check_page_matches_report(report)
    assert page.h2[:2] == ["Sample products", "gender"]
    assert "articleType (top 20 of 143)" in page.h2
    assert "44,446" in page.text and "/shared/fashion-product-images-small" in page.text
    assert any(n.startswith("22 row(s) of the CSV had unquoted commas") for n in page.notes)
    assert any(n.startswith("374 product(s) have no image file") and n.endswith("…).") for n in page.notes)
    assert page.table_with_header("gender")[1] == ["Men", "22,165", "49.9%"]
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
    notes = read_page(report.html).notes
    assert "Filtered to products where gender = Women; masterCategory = Footwear." in notes


# --------------------------------------------------------------------------- generated catalogs


@pytest.fixture(scope="module")
def sample_reports(tmp_path_factory) -> tuple[EdaReport, EdaReport]:
    """Reports of one 60-product drawn catalog: the whole of it, and its footwear only."""
    base = tmp_path_factory.mktemp("eda-sample")
    catalog = load_catalog(make_sample_catalog(base / "catalog", 60, 0))
    whole = write_report(catalog, base / "whole")
    footwear = write_report(catalog, base / "footwear", where={"masterCategory": "Footwear"})
    return whole, footwear


def test_page_shows_every_chart_beside_its_table(sample_reports):
    report, _ = sample_reports
    summary = report.summary
    page = check_page_matches_report(report)
    assert page.h1 == ["Catalog overview — catalog"] and page.title == "Catalog overview — catalog"
    assert summary["distinct"]["baseColour"] == 17  # more than the 15 counted: the heading says so
    headings = ["Sample products", *ATTRIBUTE_CHARTS, "gender × masterCategory"]
    headings[headings.index("baseColour")] = "baseColour (top 15 of 17)"
    assert page.h2 == headings
    assert [Path(i["src"]).stem for i in page.images] == ["contact_sheet", *ATTRIBUTE_CHARTS, "gender_x_masterCategory"]
    assert len({i["alt"] for i in page.images}) == len(page.images)  # each picture described on its own
    assert any("masterCategory" in i["alt"] for i in page.images if i["src"] == "contact_sheet.png")
    # one table per count, with the same numbers as summary.json, and the share of all products
    total = summary["total_products"]
    gender = page.table_with_header("gender")
    assert gender[0] == ["gender", "products", "share"]
    assert gender[1:] == [[k, f"{v:,}", f"{100 * v / total:.1f}%"] for k, v in summary["counts"]["gender"].items()]
    years = [row[0] for row in page.table_with_header("year")[1:]]
    assert years == sorted(years)  # years in time order, not by count
    cross = page.table_with_header("gender \\ masterCategory")
    columns = cross[0][1:]
    for row in cross[1:]:
        cells = summary["gender_x_masterCategory"][row[0]]
        assert row[1:] == [f"{cells.get(c, 0):,}" for c in columns]
    # the contact sheet's groups, and the products it shows with their names
    groups = page.table_with_header("group")
    assert groups[0] == ["group", "products", "shown"]
    assert {row[0] for row in groups[1:]} == {"Footwear", "Apparel", "Accessories"}
    shown = [t for t in page.tables if t[0] == ["group", "id", "name"]][0][1:]
    assert len(shown) == sum(int(row[2]) for row in groups[1:])
    products = load_catalog(summary["catalog"]).products
    names = dict(zip(products["id"].astype(str), products["productDisplayName"]))
    assert all(names[pid] == name for _, pid, name in shown)
    assert page.notes == []  # nothing missing, nothing repaired, no filter


def test_charts_are_drawn_and_sized_by_their_data(sample_reports):
    whole, footwear = sample_reports
    for report in (whole, footwear):
        for chart in report.charts:
            assert_not_blank(png_pixels(chart))
    # the baseColour chart draws each bar in the colour it counts
    pixels = {tuple(p) for p in png_pixels(whole.out_dir / "baseColour.png").reshape(-1, 3)}
    for colour in list(whole.summary["counts"]["baseColour"])[:5]:
        hexa = BASE_COLOURS[colour]
        assert tuple(int(hexa[i : i + 2], 16) for i in (1, 3, 5)) in pixels, colour
    # a horizontal bar chart grows with its bars: 13 article types vs the 4 of footwear
    assert len(whole.summary["counts"]["articleType"]) > len(footwear.summary["counts"]["articleType"])
    tall, short = png_pixels(whole.out_dir / "articleType.png"), png_pixels(footwear.out_dir / "articleType.png")
    assert tall.shape[1] == short.shape[1] and tall.shape[0] > short.shape[0] + 150
    # the contact sheet has one row of pictures per masterCategory: 3 rows vs 1
    three, one = png_pixels(whole.out_dir / "contact_sheet.png"), png_pixels(footwear.out_dir / "contact_sheet.png")
    assert three.shape[0] > 2 * one.shape[0]
    for sheet in (three, one):
        assert len(np.unique(sheet.reshape(-1, 3), axis=0)) > 5000  # drawn products, not flat bars
        assert (sheet.min(axis=2) < 200).mean() > 0.05


def test_sample_counts_match_independent_pandas(make_catalog, tmp_path):
    root = make_catalog(40, corrupt=1, missing=2, malformed_rows=3)
    report = write_report(load_catalog(root), tmp_path / "report")
    summary = json.loads(report.summary_json.read_text(encoding="utf-8"))
    assert summary == report.summary
    assert set(summary) == SUMMARY_KEYS
    assert (summary["with_image"], summary["without_image"], summary["repaired_rows"]) == (38, 2, 3)
    check_counts(summary, read_styles_independently(root / "styles.csv"))
    assert summary["catalog"] == str(root)
    page = check_page_matches_report(report)
    products = load_catalog(root).products
    missing = products.loc[~products["has_image"], "id"].astype(str)
    lines = ", ".join(str(n) for n in summary["repaired_lines"])
    repaired = f"3 row(s) of the CSV had unquoted commas in the product name; they were rejoined (lines {lines})."
    assert repaired in page.notes
    assert f"2 product(s) have no image file (ids {', '.join(missing)})." in page.notes


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


def test_page_escapes_catalog_strings(make_catalog, tmp_path):
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
    page = read_page(report.html)
    # no markup got in: the strings are shown as text
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert page.title == page.h1[0] == "<i>Spring & Summer</i>"
    names = [row[2] for row in page.tables[1][1:]]  # the folded list of products shown
    assert names and set(names) == {f"{evil} & Co"}
    assert ["<b>Boots</b>", "1", f"{100 / 12:.1f}%"] in page.table_with_header("articleType")


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
    assert read_page(report.html).notes == ["Filtered to products where gender = women; masterCategory = Footwear."]
    nothing = write_report(catalog, tmp_path / "none", where={"gender": "Nobody"})
    assert nothing.summary["total_products"] == 0 and nothing.charts == []
    page = read_page(nothing.html)
    assert page.images == [] and page.h2 == []
    assert "No products to show (nothing matches the filter)." in page.notes
    with pytest.raises(CatalogError, match="colour"):
        summarize(catalog, where={"colour": "Red"})


def test_unreadable_images_are_skipped_in_contact_sheet(make_catalog, tmp_path):
    # 12 products: every masterCategory group is smaller than a contact-sheet row, so all are tried
    root = make_catalog(12, corrupt=5, missing=1)
    report = write_report(load_catalog(root), tmp_path / "r")
    assert len(report.unreadable_images) == 5
    sheet = png_pixels(tmp_path / "r" / "contact_sheet.png")
    assert_not_blank(sheet)
    page = check_page_matches_report(report)
    groups = page.table_with_header("group")
    assert sum(int(row[2]) for row in groups[1:]) == 12 - 5 - 1  # every readable picture shown
    unreadable = [n for n in page.notes if n.startswith("5 image file(s) drawn for the contact sheet")]
    assert unreadable and all(pid in unreadable[0] for pid in report.unreadable_images)
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
    page = check_page_matches_report(report)
    assert page.h2 == ["Sample products"]
    assert page.table_with_header("group")[1:] == [["all products", "10", "8"]]
    assert any("no attribute columns" in n for n in page.notes)


def test_rewrites_an_existing_report(make_catalog, tmp_path):
    out = tmp_path / "r"
    root = make_catalog(12, corrupt=0, missing=0)
    first = write_report(load_catalog(root), out)
    plain = tmp_path / "plain"
    shutil.copytree(root / "images", plain)
    second = write_report(load_catalog(plain), out)  # one chart only: quick
    assert second.summary_json == first.summary_json and second.html == first.html
    assert json.loads(first.summary_json.read_text())["counts"] == {}
    assert any("no attribute columns" in n for n in read_page(first.html).notes)
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_report_folder_that_cannot_be_created(tmp_path, make_catalog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    catalog = load_catalog(make_catalog(6, corrupt=0, missing=0))
    with pytest.raises(FashionrecError, match="cannot create report folder"):
        write_report(catalog, blocker / "report")


# --------------------------------------------------------------------------- page templates


def test_base_template_is_a_generic_page():
    page = render("base.html")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<title>fashionrec</title>" in page and "<style>" in page


def test_unknown_template_names_the_known_ones():
    with pytest.raises(FashionrecError, match=r"no page template 'nope.html'; expected one of .*eda\.html"):
        render("nope.html")


# --------------------------------------------------------------------------- pictures of recommendations


def test_wrap_caption():
    assert wrap_caption("short") == "short"
    text = wrap_caption("Catwalk Women Black Heels with a very long product display name indeed", width=10, lines=2)
    lines = text.split("\n")
    assert len(lines) == 2 and lines[-1].endswith("…") and all(len(line) <= 10 for line in lines)
    assert wrap_caption(None) == "" and wrap_caption(pd.NA) == ""


def test_plot_with_placeholder(tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (30, 40), (220, 10, 10)).save(red)
    results = [
        (Image.new("RGB", (30, 40), (10, 10, 220)), "blue thing\nd = 0.1"),
        (tmp_path / "missing.png", "missing\nd = 0.2"),  # cannot be loaded: grey tile
        (None, "no picture\nd = 0.3"),
    ]
    out = plot_recommendations(red, "query", results, tmp_path / "figs" / "rec.png", title="More like this")
    assert out == tmp_path / "figs" / "rec.png"
    pixels = png_pixels(out)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert (220, 10, 10) in colours and (10, 10, 220) in colours
    assert PLACEHOLDER_GREY in colours
    assert not list(tmp_path.glob("figs/.*.tmp"))  # the temporary file was renamed


def test_figure_grows_with_the_number_of_tiles(tmp_path):
    picture = Image.new("RGB", (30, 40), (220, 10, 10))
    one = png_pixels(plot_recommendations(picture, "query", [], tmp_path / "one.png"))
    three = [(picture, f"r{i}") for i in range(3)]
    four = png_pixels(plot_recommendations(picture, "query", three, tmp_path / "4.png"))
    assert one.shape[0] == four.shape[0]  # one row of tiles
    assert four.shape[1] == pytest.approx(4 * one.shape[1], abs=2)
    titled = png_pixels(plot_recommendations(picture, "query", [], tmp_path / "t.png", title="More like this"))
    assert titled.shape[1] == one.shape[1] and titled.shape[0] > one.shape[0]


def test_plot_url_unreachable_gives_placeholder(tmp_path):
    out = plot_recommendations(
        "http://127.0.0.1:9/nothing.png", "query", [], tmp_path / "one.png",
        image_options={"timeout": (0.5, 0.5), "allow_private_urls": True},  # reached, and nobody listens there
    )
    assert PLACEHOLDER_GREY in {tuple(p) for p in png_pixels(out).reshape(-1, 3)[::5]}


def test_recommendation_figure(tmp_path):
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    ids = [5, 3, 9, 1]
    colours = [(250, 0, 0), (240, 10, 0), (0, 0, 250), (0, 250, 0)]
    for pid, colour in zip(ids, colours):
        Image.new("RGB", (6, 8), colour).save(root / "images" / f"{pid}.png")
    products = pd.DataFrame(
        {
            "id": pd.array(ids, dtype="Int64"),
            "productDisplayName": ["Red shoe", "Red boot", "Blue shirt", pd.NA],
            "image": [f"images/{pid}.png" for pid in ids],
        }
    )
    X = np.array(colours, dtype=np.float32) / 255
    write_index(tmp_path / "idx", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {},
                                                "catalog": {"root": str(root)}})
    rec = Recommender.load(tmp_path / "idx")
    results = rec.similar(5, k=3)
    by_id = png_pixels(recommendation_figure(rec, results, 5, tmp_path / "fig.png"))
    shown = {tuple(p) for p in by_id.reshape(-1, 3)}
    assert set(colours) <= shown  # the query's picture and its 3 recommendations' pictures
    grey = Image.new("RGB", (4, 4), (7, 7, 7))
    by_picture = png_pixels(recommendation_figure(rec, results, grey, tmp_path / "f2.png"))
    assert by_picture.shape == by_id.shape and (7, 7, 7) in {tuple(p) for p in by_picture.reshape(-1, 3)}
    by_path = png_pixels(recommendation_figure(rec, results, root / "images" / "9.png", tmp_path / "f3.png"))
    assert by_path.shape == by_id.shape
    with pytest.raises(QueryError, match="neither a product id"):
        recommendation_figure(rec, results, 3.5, tmp_path / "fig4.png")
    assert not (tmp_path / "fig4.png").exists()


def test_recommendation_figure_fetches_private_links_only_when_allowed(tmp_path, caplog):
    """Product pictures known only by a link on a private host: a placeholder saying how to allow it,
    or the picture itself from a Recommender made for an intranet catalog."""
    import http.server
    import threading
    from functools import partial

    www = tmp_path / "www"
    www.mkdir()
    colours = {5: (250, 0, 0), 3: (0, 0, 250)}
    for pid, colour in colours.items():
        Image.new("RGB", (6, 8), colour).save(www / f"{pid}.png")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler,
                                                                       directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        products = pd.DataFrame({"id": pd.array(list(colours), dtype="Int64"),
                                 "image": ["images/none.png"] * 2,  # no local file: the link is used
                                 "link": [f"{base}/{pid}.png" for pid in colours]})
        X = np.array(list(colours.values()), dtype=np.float32) / 255
        write_index(tmp_path / "idx", X, products, {"backbone": "fake", "weights": "none", "preprocessing": {},
                                                    "catalog": {"root": str(tmp_path / "no-catalog")}})
        strict = Recommender.load(tmp_path / "idx")
        with caplog.at_level("WARNING", logger="fashionrec.reports.pictures"):
            shown = {tuple(p) for p in png_pixels(recommendation_figure(
                strict, strict.similar(5, k=1), 5, tmp_path / "strict.png")).reshape(-1, 3)}
        assert PLACEHOLDER_GREY in shown and not set(colours.values()) & shown
        assert f"{base}/5.png refused" in caplog.text and "--allow-private-urls" in caplog.text
        intranet = Recommender.load(tmp_path / "idx", allow_private_urls=True)
        shown = {tuple(p) for p in png_pixels(recommendation_figure(
            intranet, intranet.similar(5, k=1), 5, tmp_path / "intranet.png")).reshape(-1, 3)}
        assert set(colours.values()) <= shown
    finally:
        server.shutdown()
        server.server_close()

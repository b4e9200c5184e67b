"""Recommendation figures: written atomically as PNG, placeholders for missing pictures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.errors import QueryError
from fashionrec.index import write_index
from fashionrec.recommend import Recommender
from fashionrec.viz import PLACEHOLDER_GREY, TILE_INCHES, plot_recommendations, recommendation_figure, wrap_caption


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
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width == pytest.approx(TILE_INCHES * 4 * 100, abs=2)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels[:: 7]}
    assert (220, 10, 10) in colours and (10, 10, 220) in colours
    assert PLACEHOLDER_GREY in colours
    assert not list(tmp_path.glob("figs/.*.tmp"))  # the temporary file was renamed


def test_plot_url_unreachable_gives_placeholder(tmp_path):
    out = plot_recommendations(
        "http://127.0.0.1:9/nothing.png", "query", [], tmp_path / "one.png", image_options={"timeout": (0.5, 0.5)}
    )
    with Image.open(out) as image:
        assert image.width == pytest.approx(TILE_INCHES * 100, abs=2)
        assert PLACEHOLDER_GREY in {tuple(p) for p in np.asarray(image.convert("RGB")).reshape(-1, 3)[::5]}


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
    out = recommendation_figure(rec, results, 5, tmp_path / "fig.png")
    with Image.open(out) as image:
        assert image.width == pytest.approx(TILE_INCHES * 4 * 100, abs=2)
    out = recommendation_figure(rec, results, Image.new("RGB", (4, 4), (250, 0, 0)), tmp_path / "fig2.png")
    assert out.is_file()
    out = recommendation_figure(rec, results, root / "images" / "9.png", tmp_path / "fig3.png")
    assert out.is_file()
    with pytest.raises(QueryError):
        recommendation_figure(rec, results, 3.5, tmp_path / "fig4.png")

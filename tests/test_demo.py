"""The demo: the whole pipeline in one command, offline, into one HTML report."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from page_checks import assert_not_blank, check_pictures, png_pixels, read_page
from typer.testing import CliRunner

from fashionrec.cli import app

runner = CliRunner()

UNREACHABLE = ("127.0.0.1", 1)
"""A closed local port: stands for Kaggle and the PyTorch hub, also on machines with internet."""


def patch_everywhere(monkeypatch, package_name: str, name: str, value) -> list[str]:
    """Set ``name`` to ``value`` on ``package_name`` and on every sub-module of it that holds ``name``.

    A host constant is read from the module that defines it, and re-laying a
    package moves it (``fashionrec.catalog`` → ``fashionrec.catalog.hub``, ...):
    patching each module that holds it reaches the definer wherever it is, and
    the package's re-export too. Returns the modules patched; fails when none is.
    """
    package = importlib.import_module(package_name)
    modules = [package]
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=package_name + "."):
        try:
            modules.append(importlib.import_module(info.name))
        except ImportError:  # an optional runtime that is not installed
            continue
    patched = []
    for module in modules:
        if name in vars(module):
            monkeypatch.setattr(module, name, value)
            patched.append(module.__name__)
    assert patched, f"no module of {package_name} defines {name}"
    return patched


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """No KaggleHub copy and no cached ResNet50 weights: what a fresh offline machine has."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    patch_everywhere(monkeypatch, "fashionrec.catalog", "KAGGLE_HOST", UNREACHABLE)
    patch_everywhere(monkeypatch, "fashionrec.models", "RESNET50_HOST", UNREACHABLE)
    return tmp_path


def run_demo_cli(*args):
    result = runner.invoke(app, ["demo", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def check_report(out, expected_backbone):
    """The page parses, shows every recommendation picture and links to the EDA report; returns the page."""
    page = read_page(out / "index.html")
    assert page.h1 == ["fashionrec demo"] and page.meta.get("viewport")
    assert page.h2 == ["Recommendations", "Retrieval quality", "Catalog exploration"]
    check_pictures(page)
    pictures = sorted((out / "recommendations").glob("*.png"))
    assert len(pictures) >= 3
    shown = {page.local_file(image["src"]) for image in page.images}
    assert {p.resolve() for p in pictures} <= shown
    for png in pictures:
        assert_not_blank(png_pixels(png))
    assert sum(i["src"].startswith("evaluation/") for i in page.images) == 1
    assert sum(i["src"].startswith("eda/") for i in page.images) >= 3
    eda = [link for link in page.links if link["text"] == "Full EDA report"]
    assert eda and page.local_file(eda[0]["href"]) == (out / "eda" / "index.html").resolve()
    assert f"Backbone: {expected_backbone}" in page.text
    metrics = page.table_with_header("metric (k=10)")
    assert metrics[0] == ["metric (k=10)", "fashionrec", "random"]
    assert "precision@10" in [row[0] for row in metrics[1:]]
    return page


@pytest.mark.slow
def test_demo_offline_without_arguments(offline_home, tmp_path):
    out = tmp_path / "demo"
    text = run_demo_cli("--out", out)
    assert "offline sample" in text
    assert "efficientnet_lite0" in text  # resnet50 weights are not available offline
    report = re.search(r"report: (\S+)", text).group(1)
    assert report.endswith("index.html")
    page = check_report(out, "efficientnet_lite0")
    assert "generated offline sample" in page.text
    # Drawn products of one kind look alike: the offline backbone must see it.
    p10 = float(re.search(r"precision@10 = ([0-9.]+)", text).group(1))
    random = float(re.search(r"random ([0-9.]+)", text).group(1))
    assert p10 > 3 * random
    row = next(r for r in page.table_with_header("metric (k=10)")[1:] if r[0] == "precision@10")
    assert float(row[1]) == pytest.approx(p10, abs=1e-3) and float(row[2]) == pytest.approx(random, abs=1e-3)
    # The index folder carries its evaluation, so a server of that index can show it.
    from fashionrec.recommend import Recommender

    index = out / "index-efficientnet_lite0"
    assert (index / "evaluation.json").read_bytes() == (out / "evaluation" / "evaluation.json").read_bytes()
    evaluation = Recommender.load(index).info().evaluation
    assert evaluation is not None and evaluation.overall["precision@10"] == pytest.approx(p10, abs=1e-3)


@pytest.mark.slow
def test_demo_on_the_real_catalog(offline_home, shared_catalog, tmp_path):
    out = tmp_path / "demo"
    text = run_demo_cli("--catalog", shared_catalog, "--out", out)
    assert "gender=Women, masterCategory=Footwear" in text
    assert "2,829 vectors" in text
    check_report(out, "efficientnet_lite0")

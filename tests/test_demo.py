"""The demo: the whole pipeline in one command, offline."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from fashionrec.cli import app

runner = CliRunner()


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """No KaggleHub copy and no cached ResNet50 weights: what a fresh offline machine has."""
    import fashionrec.backbones
    import fashionrec.catalog

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # Closed local ports stand for Kaggle and the PyTorch hub, also on machines with internet.
    monkeypatch.setattr(fashionrec.catalog, "KAGGLE_HOST", ("127.0.0.1", 1))
    monkeypatch.setattr(fashionrec.backbones, "RESNET50_HOST", ("127.0.0.1", 1))
    return tmp_path


def run_demo_cli(*args):
    result = runner.invoke(app, ["demo", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def check_report(out, expected_backbone):
    html = (out / "index.html").read_text()
    pictures = sorted((out / "recommendations").glob("*.png"))
    assert len(pictures) >= 3
    for png in pictures:
        assert png.name in html
    assert expected_backbone in html
    assert "precision@10" in html
    assert (out / "eda" / "index.html").is_file()
    return html


@pytest.mark.slow
def test_demo_offline_without_arguments(offline_home, tmp_path):
    out = tmp_path / "demo"
    text = run_demo_cli("--out", out)
    assert "offline sample" in text
    assert "efficientnet_lite0" in text  # resnet50 weights are not available offline
    report = re.search(r"report: (\S+)", text).group(1)
    assert report.endswith("index.html")
    html = check_report(out, "efficientnet_lite0")
    assert "generated offline sample" in html
    # Drawn products of one kind look alike: the offline backbone must see it.
    p10 = float(re.search(r"precision@10 = ([0-9.]+)", text).group(1))
    random = float(re.search(r"random ([0-9.]+)", text).group(1))
    assert p10 > 3 * random


@pytest.mark.slow
def test_demo_on_the_real_catalog(offline_home, shared_catalog, tmp_path):
    out = tmp_path / "demo"
    text = run_demo_cli("--catalog", shared_catalog, "--out", out)
    assert "gender=Women, masterCategory=Footwear" in text
    assert "2,829 vectors" in text
    check_report(out, "efficientnet_lite0")

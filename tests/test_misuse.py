"""Misleading results or messages (issue 10, defect 7): each misuse gives a clear, one-line answer."""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fashionrec.catalog import load_catalog
from fashionrec.cli import app
from fashionrec.embedding import ImageEmbedder, build_index
from fashionrec.errors import CatalogError, IndexFolderError
from fashionrec.index import IndexFolder

from tiny_backbone import SOURCE as TINY, register

register()
runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ("--backbone", "tiny-test", "--runtime", "torch")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def all_output(result) -> str:
    try:
        err = result.stderr
    except ValueError:  # older Click: stderr not captured separately
        err = ""
    return result.output + err


# ---------------------------------------------------------------- styles.csv that is not a file


def test_styles_csv_that_is_a_folder_is_an_error_not_a_plain_image_folder(make_catalog):
    folder = make_catalog(6)
    (folder / "styles.csv").unlink()
    (folder / "styles.csv").mkdir()
    with pytest.raises(CatalogError, match=r"styles\.csv is a folder; expected styles\.csv to be the Kaggle"):
        load_catalog(folder)
    # also one level down (the KaggleHub layout), and through the CLI as one line
    with pytest.raises(CatalogError, match="is a folder"):
        load_catalog(folder.parent)
    result = invoke("eda", folder, "--out", folder.parent / "eda")
    assert result.exit_code != 0
    text = all_output(result)
    assert "Traceback" not in text and "styles.csv is a folder" in " ".join(text.split())


def test_images_csv_that_is_a_folder_is_an_error(make_catalog):
    folder = make_catalog(6)
    (folder / "images.csv").unlink(missing_ok=True)
    (folder / "images.csv").mkdir()
    with pytest.raises(CatalogError, match=r"images\.csv is not a file"):
        load_catalog(folder)


# ---------------------------------------------------------------- two builds into one folder


def _hold_lock(folder: Path) -> int:
    """Lock ``folder`` the way a running build does; returns the descriptor (close it to release)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_second_build_into_a_locked_folder_fails_at_once(make_catalog, tmp_path):
    catalog = load_catalog(make_catalog(8))
    out = tmp_path / "idx"
    fd = _hold_lock(out)
    try:
        with pytest.raises(IndexFolderError) as caught:
            build_index(catalog, out, embedder=ImageEmbedder("tiny-test", runtime="torch"))
        message = str(caught.value)
        assert f"index folder {out} is being written by another `fashionrec index` run" in message
        assert f"(pid {os.getpid()})" in message
        assert "choose another --out" in message
        assert not (out / "manifest.json").exists()

        result = invoke("index", make_catalog(8), "--out", out, *TINY_ARGS, "--where", "gender=Men")
        assert result.exit_code != 0
        text = " ".join(all_output(result).split())
        assert f"error: index folder {out} is being written by another" in text, text
    finally:
        os.close(fd)
    # released: the same build now succeeds, and the lock does not outlive it
    summary = build_index(catalog, out, embedder=ImageEmbedder("tiny-test", runtime="torch"))
    assert summary.count == len(IndexFolder.load(out))
    os.close(_hold_lock(out))


def test_concurrent_index_processes_one_wins_the_other_fails(make_catalog, tmp_path):
    """Two processes: one holds the folder mid-build, the other (different --where) is refused."""
    folder = make_catalog(10)
    out = tmp_path / "idx"
    script = TINY + textwrap.dedent(f"""
        import sys, time
        from fashionrec.catalog import load_catalog
        from fashionrec.embedding import ImageEmbedder, build_index
        def progress(done, total):
            print("started", flush=True)
            time.sleep(30)  # hold the folder while the parent tries
        build_index(load_catalog({str(folder)!r}), {str(out)!r}, embedder=ImageEmbedder("tiny-test", runtime="torch"),
                    where={{"gender": "Women"}}, batch_size=2, progress=progress)
    """)
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert first.stdout.readline().strip() == "started"
        result = invoke("index", folder, "--out", out, *TINY_ARGS, "--where", "gender=Men")
        assert result.exit_code != 0
        text = " ".join(all_output(result).split())
        assert f"is being written by another `fashionrec index` run (pid {first.pid})" in text, text
    finally:
        first.kill()
        first.wait(30)
    # the killed run left its checkpoint; the lock died with it
    result = invoke("index", folder, "--out", out, *TINY_ARGS, "--where", "gender=Women")
    assert result.exit_code == 0, all_output(result)


# ---------------------------------------------------------------- unknown hosts


def test_unknown_host_reason_is_one_clean_line():
    import requests

    from fashionrec.network import describe_network_error

    with pytest.raises(requests.exceptions.ConnectionError) as caught:  # .invalid never resolves (RFC 6761)
        requests.get("http://nosuch-host.invalid/shirt.jpg", timeout=5)
    reason = describe_network_error(caught.value)
    assert reason.startswith("host 'nosuch-host.invalid' does not resolve"), reason
    assert "\n" not in reason and "object at 0x" not in reason and "HTTPConnection" not in reason
    assert reason.count("'") % 2 == 0 and reason.count("(") == reason.count(")"), reason


def test_image_url_with_unknown_host_gives_a_clean_message():
    from fashionrec.errors import ImageFetchError
    from fashionrec.images import open_image

    with pytest.raises(ImageFetchError) as caught:
        open_image("http://nosuch-host.invalid/shirt.jpg")
    message = str(caught.value)
    assert "object at 0x" not in message and "HTTPConnection" not in message, message
    assert message.count("'") % 2 == 0 and message.count("(") == message.count(")"), message


def test_download_with_unknown_host_says_it_does_not_resolve(monkeypatch):
    monkeypatch.setattr("fashionrec.catalog.hub.KAGGLE_HOST", ("nosuch-host.invalid", 443))
    result = invoke("download")
    assert result.exit_code != 0
    text = " ".join(all_output(result).split())
    assert text.startswith("error: cannot download"), text
    assert "host 'nosuch-host.invalid' does not resolve" in text, text
    assert text.count("'") % 2 == 0 and text.count("(") == text.count(")"), text


# ---------------------------------------------------------------- raw library warnings


def test_pillow_warning_does_not_reach_the_output(make_catalog, tmp_path, monkeypatch):
    folder = make_catalog(6, corrupt=0, missing=0)
    pixels = Image.open(next((folder / "images").iterdir())).size
    # Between the limit and twice it, Pillow warns (DecompressionBombWarning) instead of failing.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels[0] * pixels[1] * 2 // 3)

    def print_raw(message, category, filename, lineno, file=None, line=None):  # Python's own behaviour
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    logging.captureWarnings(False)  # as in a fresh process: an earlier CLI run in this one captured them
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", print_raw)
        try:
            quiet = invoke("index", folder, "--out", tmp_path / "a", *TINY_ARGS)
            loud = invoke("-v", "index", folder, "--out", tmp_path / "b", *TINY_ARGS)
        finally:
            logging.captureWarnings(False)
    assert quiet.exit_code == 0, all_output(quiet)
    text = all_output(quiet)
    assert "DecompressionBombWarning" not in text and "decompression bomb" not in text, text
    assert len(IndexFolder.load(tmp_path / "a")) == 6
    assert loud.exit_code == 0 and "decompression bomb" in all_output(loud)  # still there with -v


def test_refused_connection_reason_names_host_and_port():
    import requests

    from fashionrec.network import describe_network_error, probe

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        requests.get("http://127.0.0.1:1/shirt.jpg", timeout=5)  # port 1: nothing listens
    assert describe_network_error(caught.value) == "connection to 127.0.0.1:1 refused"
    assert probe("127.0.0.1", 1, 5) == "connection to 127.0.0.1:1 refused"


# ---------------------------------------------------------------- unquoted commas outside the name

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
GOOD = "1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Sports,Blue Shirt\n"


def _styles(tmp_path, *rows):
    from fashionrec.catalog import read_styles

    path = tmp_path / "styles.csv"
    path.write_text(HEADER + GOOD + "".join(rows))
    return lambda: read_styles(path)


def test_comma_in_a_field_before_year_names_the_line_not_year(tmp_path):
    read = _styles(tmp_path, "2,Men,Apparel,Topwear,Shirts, Tops,Blue,Fall,2012,Casual,Nice Shirt\n")
    with pytest.raises(CatalogError) as caught:
        read()
    message = str(caught.value)
    assert "styles.csv, line 3: 11 fields, expected 10" in message
    assert "an unquoted comma in a field before productDisplayName (year would be 'Fall')" in message
    assert "quote the field" in message


def test_comma_in_usage_is_not_silently_moved_into_the_name(tmp_path):
    read = _styles(tmp_path, "2,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Sports,Nice Shirt\n")
    with pytest.raises(CatalogError, match=r"line 3: 11 fields.*could be in usage \('Casual', 'Sports'\) "
                                            r"or in productDisplayName"):
        read()


def test_comma_in_usage_with_an_unseen_value_is_not_moved_into_the_name(tmp_path):
    # "Weekend" is no usage value of the file, but "Casual,Weekend" could be a new one:
    # a piece no longer than the file's usage values is not taken for the start of a name.
    read = _styles(tmp_path, "2,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Weekend,Nice Shirt\n")
    with pytest.raises(CatalogError, match=r"line 3: 11 fields.*could be in usage \('Casual', 'Weekend'\) "
                                            r"or in productDisplayName; quote the field"):
        read()


def test_comma_in_the_name_is_still_repaired(tmp_path):
    products, repaired = _styles(
        tmp_path, "2,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Nike Men Black, White Tee\n")()
    assert repaired == [3]
    assert products["productDisplayName"].tolist() == ["Blue Shirt", "Nike Men Black, White Tee"]
    assert products["usage"].tolist() == ["Sports", "Casual"]


def test_comma_in_the_name_of_a_row_without_usage_is_refused(tmp_path):
    # A missing usage is what a year pushed right by a comma in an earlier field looks like.
    read = _styles(tmp_path, "2,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,NA,Nike Men Black, White Tee\n")
    with pytest.raises(CatalogError, match=r"line 3: 11 fields.*could be in a field before year "
                                            r"\(then year would be 'NA'\) or in productDisplayName"):
        read()

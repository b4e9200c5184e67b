"""Embedding layer: index builds that skip bad images, resume, and update incrementally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashionrec.catalog import load_catalog
from fashionrec.embedding import (
    PARTIAL_DIR,
    Chunk,
    Executor,
    ImageEmbedder,
    ImageFailure,
    ThreadedExecutor,
    build_index,
    image_signature,
    load_image_array,
)
from fashionrec.errors import FashionrecError, IndexFolderError
from fashionrec.index import MANIFEST_FILE, IndexFolder

REPO = Path(__file__).resolve().parents[1]

from tiny_backbone import SOURCE as TINY, register

register()  # the tiny backbone, in this process (subprocesses below prepend TINY)


def tiny(**kwargs) -> ImageEmbedder:
    return ImageEmbedder("tiny-test", runtime="torch", **kwargs)


@pytest.fixture
def catalog(make_catalog):
    return load_catalog(make_catalog(24, corrupt=1, missing=1))


def test_build_skips_missing_and_corrupt_images(catalog, tmp_path):
    summary = build_index(catalog, tmp_path / "idx", embedder=tiny(), batch_size=5)
    index = IndexFolder.load(tmp_path / "idx")
    assert summary.count == len(index) == 22
    reasons = sorted(entry["reason"].split(":")[0] for entry in summary.skipped)
    assert reasons == ["no image file", "unreadable image"]
    assert index.embeddings.dtype == np.float32 and index.embeddings.shape == (22, 8)
    assert isinstance(index.embeddings, np.memmap)
    expected_ids = [i for i in catalog.products["id"] if i not in {e["id"] for e in summary.skipped}]
    assert index.products["id"].tolist() == expected_ids
    assert index.products.columns[0] == "id"
    m = index.manifest
    assert (m["backbone"], m["dim"], m["count"], m["weights"]) == ("tiny-test", 8, 22, "tiny-test:seed0")
    assert m["preprocessing"]["input_size"] == 32
    assert not (tmp_path / "idx" / PARTIAL_DIR).exists()


def test_vectors_match_direct_embedding(catalog, tmp_path):
    build_index(catalog, tmp_path / "idx", embedder=tiny(), batch_size=7)
    index = IndexFolder.load(tmp_path / "idx")
    row = 3
    image = Image.open(catalog.root / index.products["image"].iloc[row])
    direct = tiny().embed([image])[0]
    np.testing.assert_allclose(index.embeddings[row], direct, rtol=1e-5, atol=1e-6)


def test_rerun_on_unchanged_catalog_does_no_work(catalog, tmp_path):
    build_index(catalog, tmp_path / "idx", embedder=tiny())
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").iterdir()}
    calls = []
    summary = build_index(catalog, tmp_path / "idx", embedder=tiny(), progress=lambda d, t: calls.append(d))
    assert summary.unchanged and summary.embedded == 0 and not calls
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").iterdir()} == before


def test_new_products_are_embedded_incrementally(make_catalog, tmp_path):
    folder = make_catalog(30, corrupt=0, missing=0)
    styles = pd.read_csv(folder / "styles.csv", dtype=str, keep_default_na=False)
    head = styles.iloc[:20]
    (folder / "styles.full.csv").write_text(Path(folder / "styles.csv").read_text())
    head.to_csv(folder / "styles.csv", index=False)
    first = build_index(load_catalog(folder), tmp_path / "idx", embedder=tiny())
    assert first.embedded == 20
    old = IndexFolder.load(tmp_path / "idx")
    old_vectors = dict(zip(old.products["id"], np.array(old.embeddings)))

    os.replace(folder / "styles.full.csv", folder / "styles.csv")
    second = build_index(load_catalog(folder), tmp_path / "idx", embedder=tiny())
    assert (second.embedded, second.reused, second.count) == (10, 20, 30)
    new = IndexFolder.load(tmp_path / "idx")
    for pid, vector in zip(new.products["id"], new.embeddings):
        if pid in old_vectors:
            np.testing.assert_array_equal(vector, old_vectors[pid])


def test_changed_image_is_re_embedded(make_catalog, tmp_path):
    folder = make_catalog(10, corrupt=0, missing=0)
    cat = load_catalog(folder)
    build_index(cat, tmp_path / "idx", embedder=tiny())
    target = cat.image_path(cat.products["id"].iloc[0])
    Image.new("RGB", (60, 80), (0, 200, 0)).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    summary = build_index(load_catalog(folder), tmp_path / "idx", embedder=tiny())
    assert (summary.embedded, summary.reused) == (1, 9)


def corrupt_entry(skipped):
    (entry,) = [e for e in skipped if e["reason"].startswith("unreadable image")]
    return entry


def test_unreadable_image_is_reported_and_stays_skipped_until_fixed(catalog, tmp_path):
    out = tmp_path / "idx"
    first = build_index(catalog, out, embedder=tiny(), batch_size=5)
    manifest = IndexFolder.load(out).manifest
    assert manifest["skipped"] == first.skipped
    (no_file,) = [e for e in first.skipped if e["reason"] == "no image file"]
    bad = corrupt_entry(first.skipped)
    assert set(no_file) == {"id", "image", "reason"}
    assert set(bad) == {"id", "image", "signature", "reason"}
    assert bad["reason"].startswith("unreadable image: UnidentifiedImageError: ")
    path = catalog.root / bad["image"]
    assert bad["signature"] == image_signature(path)

    # Unchanged file: not retried, and the skip is still reported.
    calls = []
    again = build_index(catalog, out, embedder=tiny(), progress=lambda d, t: calls.append((d, t)))
    assert again.unchanged and not calls and corrupt_entry(again.skipped) == bad

    # Still corrupt but changed: retried once, skipped again with its new signature.
    path.write_bytes(b"still not an image, but other bytes")
    changed = build_index(catalog, out, embedder=tiny(), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)] and changed.embedded == 0 and changed.count == 22
    assert corrupt_entry(changed.skipped)["signature"] == image_signature(path)

    # Fixed: embedded, and gone from the skipped list.
    Image.new("RGB", (60, 80), (200, 0, 0)).save(path, "JPEG")
    fixed = build_index(catalog, out, embedder=tiny())
    assert (fixed.embedded, fixed.reused, fixed.count) == (1, 22, 23)
    assert [e["reason"] for e in fixed.skipped] == ["no image file"]
    index = IndexFolder.load(out)
    assert bad["id"] in index.products["id"].tolist()
    direct = tiny().embed([Image.open(path)])[0]
    row = index.products["id"].tolist().index(bad["id"])
    np.testing.assert_allclose(index.embeddings[row], direct, rtol=1e-5, atol=1e-6)


def test_checkpoint_in_the_on_disk_format_is_resumed(make_catalog, tmp_path):
    """A .partial folder as any version writes it (state.json + chunk-*.npz) is picked up as is."""
    folder = make_catalog(6, corrupt=0, missing=0)
    cat = load_catalog(folder)
    out = tmp_path / "idx"
    settings = tiny().settings()
    ids = cat.products["id"].tolist()
    keys = [f"{pid}\t{image_signature(cat.image_path(pid))}" for pid in ids]
    partial = out / PARTIAL_DIR
    partial.mkdir(parents=True)
    (partial / "state.json").write_text(json.dumps({k: settings[k] for k in ("backbone", "weights", "preprocessing", "dim")}))
    marker = np.full((2, 8), 7.0, np.float32)
    np.savez(partial / "chunk-000000.npz", keys=np.array(keys[:2], dtype=str), vectors=marker,
             failed_keys=np.array(keys[2:3], dtype=str), failed_reasons=np.array(["unreadable image: from before"], dtype=str))

    summary = build_index(cat, out, embedder=tiny())
    assert (summary.reused, summary.embedded, summary.count) == (3, 3, 5)
    index = IndexFolder.load(out)
    vectors = dict(zip(index.products["id"], np.array(index.embeddings)))
    np.testing.assert_array_equal(vectors[ids[0]], marker[0])
    np.testing.assert_array_equal(vectors[ids[1]], marker[1])
    assert summary.skipped == [{"id": ids[2], "image": f"images/{ids[2]}.jpg",
                                "signature": image_signature(cat.image_path(ids[2])),
                                "reason": "unreadable image: from before"}]
    assert not partial.exists()


class FlakyExecutor(Executor):
    """The local executor, except that one image's worker 'fails'."""

    def __init__(self, failing_id):
        self.failing_id = failing_id
        self.seen = []

    def run(self, embedder, tasks, *, batch_size, checkpoint_every, progress=None):
        self.seen.extend(task.key for task in tasks)
        failing = [t for t in tasks if t.path.stem == str(self.failing_id)]
        yield Chunk([], np.zeros((0, embedder.dim), np.float32), {t.key: ImageFailure("worker lost") for t in failing})
        rest = [t for t in tasks if t not in failing]
        yield from ThreadedExecutor(1).run(embedder, rest, batch_size=batch_size, checkpoint_every=checkpoint_every)


def test_build_runs_on_the_executor_it_is_given(make_catalog, tmp_path):
    cat = load_catalog(make_catalog(8, corrupt=0, missing=0))
    victim = cat.products["id"].iloc[3]
    executor = FlakyExecutor(victim)
    summary = build_index(cat, tmp_path / "idx", embedder=tiny(), executor=executor)
    assert len(executor.seen) == 8
    assert (summary.embedded, summary.count) == (7, 7)
    assert [(e["id"], e["reason"]) for e in summary.skipped] == [(victim, "worker lost")]
    assert victim not in IndexFolder.load(tmp_path / "idx").products["id"].tolist()
    with pytest.raises(FashionrecError, match="both executor=.* and workers=2"):
        build_index(cat, tmp_path / "idx2", embedder=tiny(), executor=executor, workers=2)


def test_ctrl_c_keeps_finished_work_and_resumes(catalog, tmp_path):
    out = tmp_path / "idx"

    def interrupt_after_two_batches(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, out, embedder=tiny(), batch_size=4, checkpoint_every=4, progress=interrupt_after_two_batches)
    assert not (out / MANIFEST_FILE).exists()  # no half-made index
    assert list((out / PARTIAL_DIR).glob("chunk-*.npz"))

    resumed = build_index(catalog, out, embedder=tiny(), batch_size=4)
    assert resumed.reused >= 8 and resumed.embedded <= 22 - 8 + 1
    clean = build_index(catalog, tmp_path / "clean", embedder=tiny(), batch_size=4)
    a, b = IndexFolder.load(out), IndexFolder.load(tmp_path / "clean")
    assert a.products["id"].tolist() == b.products["id"].tolist()
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=1e-6, atol=1e-6)
    assert clean.embedded == 22


def test_kill_9_half_way_resumes_to_the_same_result(make_catalog, tmp_path):
    folder = make_catalog(40, corrupt=0, missing=0)
    out = tmp_path / "idx"
    script = tmp_path / "run.py"
    script.write_text(
        TINY
        + textwrap.dedent(
            f"""
            import sys, time
            from fashionrec.catalog import load_catalog
            from fashionrec.embedding import ImageEmbedder, build_index
            def slow(done, total):
                time.sleep(0.3)
            build_index(load_catalog({str(folder)!r}), {str(out)!r}, embedder=ImageEmbedder("tiny-test", runtime="torch"),
                        batch_size=2, checkpoint_every=2, progress=slow)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / PARTIAL_DIR).glob("chunk-*.npz"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    chunks = list((out / PARTIAL_DIR).glob("chunk-*.npz"))
    assert len(chunks) >= 3 and not (out / MANIFEST_FILE).exists()

    resumed = build_index(load_catalog(folder), out, embedder=tiny())
    assert resumed.reused >= 6 and resumed.count == 40
    clean = build_index(load_catalog(folder), tmp_path / "clean", embedder=tiny())
    np.testing.assert_allclose(
        IndexFolder.load(out).embeddings, IndexFolder.load(tmp_path / "clean").embeddings, rtol=1e-6, atol=1e-6
    )
    assert clean.embedded == 40


def test_refuses_to_mix_preprocessing_or_backbones(catalog, tmp_path):
    from dataclasses import replace

    build_index(catalog, tmp_path / "idx", embedder=tiny())
    padded = replace(tiny().preprocessing, mode="pad")
    with pytest.raises(IndexFolderError, match="preprocessing.*cannot be mixed"):
        build_index(catalog, tmp_path / "idx", embedder=tiny(preprocessing=padded))


def test_refuses_a_folder_that_is_not_an_index(catalog, tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(IndexFolderError, match="not an index folder"):
        build_index(catalog, tmp_path / "stuff", embedder=tiny())


def test_half_written_index_is_detected_and_repaired(catalog, tmp_path):
    out = tmp_path / "idx"
    build_index(catalog, out, embedder=tiny())
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["generation"] = "from-another-run"
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexFolderError, match="inconsistent"):
        IndexFolder.load(out)
    summary = build_index(catalog, out, embedder=tiny())
    assert summary.count == 22 and IndexFolder.load(out).manifest["count"] == 22


def test_where_selects_products(catalog, tmp_path):
    kinds = catalog.products.loc[catalog.products["has_image"], "articleType"].value_counts()
    kind = kinds.index[0]
    summary = build_index(catalog, tmp_path / "idx", embedder=tiny(), where={"articleType": kind})
    index = IndexFolder.load(tmp_path / "idx")
    assert set(index.products["articleType"]) == {kind}
    assert index.manifest["catalog"]["where"] == {"articleType": kind}
    assert summary.count <= kinds.iloc[0]


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path):
    big = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    pixels = np.kron(rng.integers(0, 255, (30, 20, 3)), np.ones((100, 100, 1))).astype(np.uint8)
    Image.fromarray(pixels).save(big, quality=90)  # 2000 x 3000
    p = tiny().preprocessing
    drafted = load_image_array(big, p)
    with Image.open(big) as full:
        full.load()
        from fashionrec.models import preprocess

        reference = preprocess(full, p)
    assert drafted.shape == reference.shape == (3, 32, 32)
    cos = float(np.dot(drafted.ravel(), reference.ravel()) / np.linalg.norm(drafted) / np.linalg.norm(reference))
    assert cos > 0.99


def _png_declaring(width: int, height: int) -> bytes:
    """A 1-bit PNG of ``width`` x ``height`` white pixels: a few KB on disk, ~``width*height*4`` bytes decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + b"\xff" * ((width + 7) // 8)  # filter byte + one bit per pixel
    body = zlib.compressobj(9)
    data = b"".join(body.compress(row) for _ in range(height)) + body.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_a_picture_over_the_pixel_limit_is_skipped_from_its_header(make_catalog, tmp_path):
    """A 12,000 x 12,000 PNG of a few hundred KB would take ~2 GB decoded: the build skips it, unread.

    The build runs in a fresh process so that its peak memory (ru_maxrss) is its own."""
    from fashionrec.images import DEFAULT_MAX_PIXELS

    folder = make_catalog(6, corrupt=0, missing=0)
    catalog = load_catalog(folder)
    victim = int(catalog.products["id"].iloc[2])
    huge = _png_declaring(12_000, 12_000)
    assert len(huge) < 1_000_000
    (folder / catalog.products["image"].iloc[2]).write_bytes(huge)
    out = tmp_path / "idx"
    script = tmp_path / "run.py"
    script.write_text(
        TINY
        + textwrap.dedent(
            f"""
            import json, resource
            from fashionrec.catalog import load_catalog
            from fashionrec.embedding import ImageEmbedder, build_index
            embedder = ImageEmbedder("tiny-test", runtime="torch")
            embedder.settings()  # the model loads before the measure starts
            catalog = load_catalog({str(folder)!r})
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            summary = build_index(catalog, {str(out)!r}, embedder=embedder)
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            print(json.dumps({{"grown_kib": grown, "count": summary.count, "skipped": summary.skipped}}))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["grown_kib"] < 150_000  # decoding it would take ~700 MB (mode "1") to ~2 GB
    assert result["count"] == 5
    assert [(e["id"], e["reason"]) for e in result["skipped"]] == [
        (victim, f"too large: 12000 x 12000 = 144,000,000 pixels, at most {DEFAULT_MAX_PIXELS:,}")
    ]
    assert victim not in set(IndexFolder.load(out).products["id"])


def test_load_image_array_refuses_too_many_pixels_unless_allowed(tmp_path):
    from fashionrec.errors import ImageTooLargeError

    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    p = tiny().preprocessing
    with pytest.raises(ImageTooLargeError, match=rf"image file {path} is too large: 40 x 30 = 1,200 pixels, expected at most 1,199"):
        load_image_array(path, p, max_pixels=1199)
    assert load_image_array(path, p, max_pixels=1200).shape == (3, 32, 32)
    assert load_image_array(path, p, max_pixels=None).shape == (3, 32, 32)


def _index_cli(catalog, out, *options):
    from typer.testing import CliRunner

    from fashionrec.cli import app

    return CliRunner().invoke(app, ["index", str(catalog), "--out", str(out), "--backbone", "tiny-test",
                                    "--runtime", "torch", *map(str, options)], catch_exceptions=False)


def test_index_max_pixels_is_an_option_and_a_raised_limit_takes_effect_on_the_next_run(make_catalog, tmp_path):
    folder = make_catalog(6, corrupt=0, missing=0)  # drawn images of 60 x 80 = 4,800 pixels
    out = tmp_path / "idx"
    small = _index_cli(folder, out, "--max-pixels", 4000)
    assert small.exit_code == 0, small.output
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["count"] == 0
    assert {e["reason"] for e in manifest["skipped"]} == {"too large: 60 x 80 = 4,800 pixels, at most 4,000"}

    default = _index_cli(folder, out)  # the limit raised: the files are read again, not remembered as skipped
    assert default.exit_code == 0, default.output
    assert len(IndexFolder.load(out)) == 6

    bad = _index_cli(folder, tmp_path / "other", "--max-pixels", 0)
    assert bad.exit_code != 0 and "--max-pixels 0: expected a whole number of pixels, 1 or more" in bad.output


def test_image_links_out_of_the_catalog_are_skipped_unless_followed(make_catalog, tmp_path):
    folder = make_catalog(6, corrupt=0, missing=0)
    catalog = load_catalog(folder)
    images = [folder / rel for rel in catalog.products["image"]]
    ids = catalog.products["id"].tolist()
    outside = tmp_path / "private" / "holiday.jpg"
    outside.parent.mkdir()
    Image.new("RGB", (60, 80), (1, 200, 3)).save(outside)
    images[1].unlink()
    images[1].symlink_to(outside)  # a link out of the catalog: not read
    images[2].unlink()
    images[2].symlink_to(images[0].name)  # a link to another image of the catalog: fine

    out = tmp_path / "idx"
    summary = build_index(catalog, out, embedder=tiny())
    assert summary.count == 5
    (entry,) = summary.skipped
    assert entry["id"] == ids[1]
    assert entry["reason"] == (f"symbolic link to a file outside the catalog folder ({outside}); "
                               "not read unless `fashionrec index --follow-links`")
    assert ids[1] not in set(IndexFolder.load(out).products["id"])

    followed = _index_cli(folder, out, "--follow-links")
    assert followed.exit_code == 0, followed.output
    assert ids[1] in set(IndexFolder.load(out).products["id"])


def test_a_linked_images_folder_is_the_users_layout_and_is_read(make_catalog, tmp_path):
    folder = make_catalog(6, corrupt=0, missing=0)
    elsewhere = tmp_path / "big-disk" / "images"
    elsewhere.parent.mkdir()
    (folder / "images").rename(elsewhere)
    (folder / "images").symlink_to(elsewhere)
    assert build_index(load_catalog(folder), tmp_path / "idx", embedder=tiny()).count == 6


def test_power_features_are_the_raw_ones_rooted_and_unit_length_and_queries_get_them_too(catalog, tmp_path):
    from fashionrec.recommend import Recommender

    build_index(catalog, tmp_path / "raw", embedder=tiny())
    build_index(catalog, tmp_path / "power", embedder=tiny(features="power"))
    raw, power = IndexFolder.load(tmp_path / "raw"), IndexFolder.load(tmp_path / "power")
    assert "features" not in raw.manifest and power.manifest["features"] == "power"  # absent means raw
    rooted = np.sign(raw.embeddings) * np.sqrt(np.abs(raw.embeddings))
    expected = rooted / np.linalg.norm(rooted, axis=1, keepdims=True)
    np.testing.assert_allclose(power.embeddings, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(power.embeddings, axis=1), 1.0, rtol=1e-5)
    rec = Recommender.load(tmp_path / "power")
    assert rec.info().features == "power"
    image = catalog.root / power.products["image"].iloc[4]
    first = rec.similar_to_image(image, k=1)
    assert first["id"].iloc[0] == power.products["id"].iloc[4] and first["distance"].iloc[0] < 1e-3
    with pytest.raises(IndexFolderError, match="features: index has 'power', requested None.*cannot be mixed"):
        build_index(catalog, tmp_path / "power", embedder=tiny())
    with pytest.raises(FashionrecError, match="unknown feature transform 'sqrt'; expected one of raw, power"):
        tiny(features="sqrt")


def test_the_catalog_look_is_recorded_when_the_index_is_built(catalog, tmp_path):
    build_index(catalog, tmp_path / "idx", embedder=tiny())
    look = IndexFolder.load(tmp_path / "idx").manifest["catalog_look"]
    with Image.open(catalog.root / catalog.products["image"].iloc[0]) as first:
        assert (look["width"], look["height"]) == first.size
    assert look["quality"] == 90 and look["background"] == [255, 255, 255]  # the sample catalog's JPEG settings

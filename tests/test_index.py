"""Index folders hold finite vectors only: written finite, checked on load, repaired by `fashionrec index`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fashionrec.catalog import load_catalog
from fashionrec.cli import app
from fashionrec.embedding import PARTIAL_DIR, Chunk, ImageEmbedder, build_index
from fashionrec.embedding.checkpoint import Checkpoint
from fashionrec.errors import IndexFolderError
from fashionrec.index import EMBEDDINGS_FILE, IndexFolder, write_index
from fashionrec.recommend import Recommender

from tiny_backbone import register

register()

NAN_REASON = "the backbone returned a non-finite vector (NaN) for this image"


def tiny() -> ImageEmbedder:
    return ImageEmbedder("tiny-test", runtime="torch")


class NanOnBlankImages(ImageEmbedder):
    """The tiny backbone, except that it returns NaN for a blank (single-colour) image, as a broken model might."""

    def embed_arrays(self, batch):
        vectors = super().embed_arrays(batch).copy()
        blank = np.asarray(batch).reshape(len(batch), 3, -1).std(axis=2).max(axis=1) < 1e-6
        vectors[blank, 1] = np.nan
        return vectors


@pytest.fixture
def built(make_catalog, tmp_path, monkeypatch):
    """A clean index of a 12-product catalog, checksummed in blocks of 4 rows: (catalog, index folder)."""
    import fashionrec.index.folder

    monkeypatch.setattr(fashionrec.index.folder, "CHECKSUM_BLOCK_ROWS", 4)
    catalog = load_catalog(make_catalog(12, corrupt=0, missing=0))
    build_index(catalog, tmp_path / "idx", embedder=tiny(), batch_size=4)
    return catalog, tmp_path / "idx"


def poison(folder, values: dict[int, float]) -> None:
    """Write ``values[row]`` into one component of each given row of ``embeddings.npy``, in place."""
    vectors = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r+")
    for row, value in values.items():
        vectors[row, 2] = value
    vectors.flush()
    del vectors


# --------------------------------------------------------------------------- written finite


def test_backbone_nan_skips_the_image_with_a_reason(make_catalog, tmp_path):
    folder = make_catalog(10, corrupt=0, missing=0)
    catalog = load_catalog(folder)
    victim = catalog.products["id"].iloc[4]
    Image.new("RGB", (60, 80), (128, 128, 128)).save(catalog.image_path(victim))

    out = tmp_path / "idx"
    summary = build_index(load_catalog(folder), out, embedder=NanOnBlankImages("tiny-test", runtime="torch"),
                          batch_size=3, checkpoint_every=3)
    assert [(e["id"], e["reason"]) for e in summary.skipped] == [(victim, NAN_REASON)]
    assert summary.count == 9
    index = IndexFolder.load(out)  # loads: every stored vector is finite
    assert victim not in index.products["id"].tolist()
    assert np.isfinite(index.embeddings).all()
    assert index.manifest["skipped"][0]["signature"]  # remembered: not retried until the file changes

    again = build_index(load_catalog(folder), out, embedder=NanOnBlankImages("tiny-test", runtime="torch"))
    assert again.unchanged and again.embedded == 0


def test_checkpoint_never_keeps_a_non_finite_vector_as_done(tmp_path):
    settings = {"backbone": "b", "weights": "w", "preprocessing": {}, "dim": 2}
    vectors = np.array([[1.0, 2.0], [np.nan, 0.0], [np.inf, 1.0]], np.float32)
    Checkpoint(tmp_path / PARTIAL_DIR, settings).save(Chunk(["a\t1", "b\t1", "c\t1"], vectors))
    loaded = Checkpoint(tmp_path / PARTIAL_DIR, settings).load()
    assert list(loaded.vectors) == ["a\t1"]
    assert loaded.failures["b\t1"].reason == NAN_REASON
    assert loaded.failures["c\t1"].reason == "the backbone returned a non-finite vector (inf) for this image"

    # A chunk written by an older version, NaN stored as a vector: not reused, so embedded again.
    np.savez(tmp_path / PARTIAL_DIR / "chunk-000009.npz", keys=np.array(["d\t1", "e\t1"]),
             vectors=np.array([[np.nan, 1.0], [3.0, 4.0]], np.float32),
             failed_keys=np.array([], dtype=str), failed_reasons=np.array([], dtype=str))
    loaded = Checkpoint(tmp_path / PARTIAL_DIR, settings).load()
    assert "d\t1" not in loaded and "e\t1" in loaded.vectors


def test_write_index_refuses_non_finite_vectors(built, tmp_path):
    _, folder = built
    index = IndexFolder.load(folder)
    vectors = np.array(index.embeddings)
    vectors[5, 0] = np.inf
    with pytest.raises(IndexFolderError, match=rf"1 of 12 vectors are not finite \(first: row 5, product id "
                                               rf"{index.products['id'].iloc[5]}\)"):
        write_index(tmp_path / "other", vectors, index.products, index.manifest)
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------- checked on load


def test_load_names_the_first_bad_row_its_id_and_the_count(built):
    _, folder = built
    poison(folder, {7: np.nan, 3: np.inf})
    pid = IndexFolder.load(folder, check_finite=False).products["id"].iloc[3]
    with pytest.raises(IndexFolderError) as caught:
        IndexFolder.load(folder)
    message = str(caught.value)
    assert f"row 3 (product id {pid}) holds inf" in message
    assert "2 of 12 rows are not finite" in message
    assert f"re-run `fashionrec index {load_catalog_root(folder)} --out {folder}` to repair it" in message
    with pytest.raises(IndexFolderError, match=r"row 3 \(product id"):
        Recommender.load(folder, embedder=tiny())


def load_catalog_root(folder):
    return json.loads((folder / "manifest.json").read_text())["catalog"]["root"]


def test_cli_recommend_on_a_nan_index_fails_with_one_line(built):
    catalog, folder = built
    index = IndexFolder.load(folder)
    query = index.products["id"].iloc[0]
    poison(folder, {5: np.nan})
    result = CliRunner().invoke(app, ["recommend", str(folder), "--id", str(query)], catch_exceptions=False)
    assert result.exit_code != 0
    text = result.stderr if result.stderr else result.output
    assert "Traceback" not in text and text.strip().startswith("error:")
    flat = " ".join(text.split())
    assert f"row 5 (product id {index.products['id'].iloc[5]}) holds NaN" in flat
    assert "1 of 12 rows are not finite" in flat


# --------------------------------------------------------------------------- repaired by `index`


def test_index_re_embeds_only_the_damaged_blocks(built, tmp_path):
    """Rows 2 and 9 poisoned: their blocks of 4 rows (0-3, 8-11) no longer match their checksums and are re-embedded."""
    catalog, folder = built
    clean = IndexFolder.load(folder)
    clean_vectors, clean_ids = np.array(clean.embeddings), clean.products["id"].tolist()
    del clean
    poison(folder, {2: np.nan, 9: -np.inf})

    summary = build_index(catalog, folder, embedder=tiny(), batch_size=4)
    assert not summary.unchanged
    assert (summary.embedded, summary.reused, summary.count) == (8, 4, 12)
    repaired = IndexFolder.load(folder)  # finite again
    assert repaired.products["id"].tolist() == clean_ids
    np.testing.assert_allclose(repaired.embeddings, clean_vectors, rtol=1e-6, atol=1e-6)
    untouched = [4, 5, 6, 7]
    np.testing.assert_array_equal(repaired.embeddings[untouched], clean_vectors[untouched])  # reused as they were

    assert build_index(catalog, folder, embedder=tiny()).unchanged


def test_non_finite_rows_finds_bad_rows_across_chunks():
    """The load check reads a few megabytes at a time; a bad row is found wherever it falls."""
    from fashionrec.index.folder import scan_embeddings

    def non_finite_rows(vectors):
        return scan_embeddings(vectors).non_finite

    vectors = np.ones((1000, 16), np.float32)
    vectors[[10, 999], [0, 15]] = [np.nan, np.inf]
    assert non_finite_rows(vectors).tolist() == [10, 999]
    # Chunked: a bad row found across chunk boundaries.
    big = np.zeros((300_000, 8), np.float32)
    big[[0, 262_143, 262_144, 299_999], 3] = np.nan
    assert non_finite_rows(big).tolist() == [0, 262_143, 262_144, 299_999]

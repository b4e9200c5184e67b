"""kill -9 at every point of an index write, and at random moments: the resumed index equals a clean build.

Each crash point (:mod:`fashionrec.crashpoints`: every file replacement, link
switch and clean-up of a build) is hit by a real SIGKILL of a real
`fashionrec index` process (:mod:`forkserver`); then a plain `fashionrec index`
resumes. The result must equal an uninterrupted build: the same products, the
same skipped list, and bit-identical vectors per product id, with no
checkpointed work embedded twice.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fashionrec.errors import IndexFolderError
from fashionrec.crashpoints import CRASH_AT_ENV, CRASH_LOG_ENV

from conftest import TINY_ARGS, assert_tidy, index_content

CHECKPOINT_EVERY = 4
BUILD_ARGS = (*TINY_ARGS, "--batch-size", "2", "--checkpoint-every", str(CHECKPOINT_EVERY))


def index(forkserver, catalog: Path, out: Path, *extra, env=None, kill_after=None):
    return forkserver.run("index", catalog, "--out", out, *BUILD_ARGS, *extra, env=env, kill_after=kill_after)


def crash_points(forkserver, catalog: Path, out: Path, log: Path) -> list[str]:
    """Run one uninterrupted build, logging the crash points it passes; returns their names in order."""
    done = index(forkserver, catalog, out, env={CRASH_LOG_ENV: str(log)})
    assert done.returncode == 0, done.output
    return log.read_text().splitlines()


def reused(output: str) -> int:
    """The ``reused N`` figure of an `index` run's summary line (everything, for "up to date")."""
    text = " ".join(output.split())
    if "is up to date" in text and "nothing to do" in text:
        return 10**9
    match = re.search(r"reused (\d+)", text)
    assert match, output
    return int(match.group(1))


def loaded_or_none(out: Path):
    """The index a reader sees in ``out`` after a crash: its content, or None when there is no index yet."""
    try:
        return index_content(out)
    except IndexFolderError as exc:
        assert any(why in str(exc) for why in ("does not exist", "is incomplete", "not an index folder")), exc
        return None


@pytest.fixture
def catalog_versions(make_catalog, tmp_path):
    """Two versions of a 14-product catalog (one corrupt image, one missing) with the same product count:
    v2 drops v1's first product, adds a new last one and changes one image file."""
    folder = make_catalog(15, corrupt=1, missing=1)
    styles = pd.read_csv(folder / "styles.csv", dtype=str, keep_default_na=False)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for dest, rows in ((v1, styles.iloc[:14]), (v2, styles.iloc[1:])):
        shutil.copytree(folder, dest, copy_function=shutil.copy2)
        rows.to_csv(dest / "styles.csv", index=False)
    changed = v2 / "images" / f"{styles['id'].iloc[5]}.jpg"
    from PIL import Image

    Image.new("RGB", (60, 80), (200, 30, 30)).save(changed)
    return v1, v2


def test_a_first_build_killed_at_every_crash_point_resumes_to_a_clean_build(forkserver, catalog_versions, tmp_path):
    v1, _ = catalog_versions
    points = crash_points(forkserver, v1, tmp_path / "clean", tmp_path / "points.log")
    clean = index_content(tmp_path / "clean")
    assert len(clean["vectors"]) == 12 and len(clean["skipped"]) == 2  # the corrupt and the missing image
    assert sum(p.startswith("replace chunk-") for p in points) >= 3  # 13 image files, checkpointed every 4
    assert {"replace embeddings.npy", "replace products.parquet", "replace manifest.json", "switch link current",
            "remove previous generations", "discard checkpoint"} <= set(points)

    for at, point in enumerate(points, start=1):
        out = tmp_path / f"first-{at}"
        killed = index(forkserver, v1, out, env={CRASH_AT_ENV: str(at)})
        assert killed.killed, (point, killed.returncode, killed.output)
        seen = loaded_or_none(out)
        assert seen in (None, clean), point  # no index yet, or the whole new one: never part of one
        chunks_saved = sum(p.startswith("replace chunk-") for p in points[: at - 1])

        resumed = index(forkserver, v1, out)
        assert resumed.returncode == 0, (point, resumed.output)
        image_files = len(clean["vectors"]) + 1  # and the corrupt one, whose failure is checkpointed too
        assert reused(resumed.output) >= min(chunks_saved * CHECKPOINT_EVERY, image_files), point  # work kept
        assert index_content(out) == clean, point
        assert_tidy(out)


def test_an_update_killed_at_every_crash_point_shows_one_version_then_finishes(forkserver, catalog_versions, tmp_path):
    v1, v2 = catalog_versions
    base = tmp_path / "base"
    assert index(forkserver, v1, base).returncode == 0
    before = index_content(base)
    reference = tmp_path / "reference"
    shutil.copytree(base, reference, symlinks=True)
    points = crash_points(forkserver, v2, reference, tmp_path / "points.log")
    after = index_content(reference)
    assert set(after["vectors"]) != set(before["vectors"]) and len(after["vectors"]) == len(before["vectors"])
    assert "switch link current" in points

    for at, point in enumerate(points, start=1):
        out = tmp_path / f"update-{at}"
        shutil.copytree(base, out, symlinks=True)
        killed = index(forkserver, v2, out, env={CRASH_AT_ENV: str(at)})
        assert killed.killed, (point, killed.output)
        assert index_content(out) in (before, after), point  # the old version or the new one, whole
        resumed = index(forkserver, v2, out)
        assert resumed.returncode == 0, (point, resumed.output)
        assert index_content(out) == after, point
        assert_tidy(out)


def test_builds_killed_at_random_moments_resume_to_a_clean_build(forkserver, make_catalog, tmp_path):
    catalog = make_catalog(60, corrupt=2, missing=1)
    clean_run = index(forkserver, catalog, tmp_path / "clean")
    assert clean_run.returncode == 0, clean_run.output
    clean = index_content(tmp_path / "clean")
    rng = random.Random(20261129)  # fixed: the same kill times on every run of the suite
    kills = 0
    for trial in range(3):
        out = tmp_path / f"random-{trial}"
        for _ in range(8):  # kill -9 at a random moment until a run gets through
            run = index(forkserver, catalog, out, kill_after=rng.uniform(0.02, 0.6))
            if run.returncode == 0:
                break
            assert run.killed, run.output
            kills += 1
            seen = loaded_or_none(out)
            assert seen in (None, clean)
        else:
            assert index(forkserver, catalog, out).returncode == 0
        assert index_content(out) == clean
        assert_tidy(out)
    assert kills >= 3  # the kills did land during builds


def test_concurrent_builds_into_one_folder_one_at_a_time(forkserver, make_catalog, tmp_path):
    """Four builds started at once (two filters): each either finishes or is refused at once naming the other;
    the folder ends as a clean build of the last filter that finished."""
    catalog = make_catalog(40, corrupt=1, missing=1)
    out = tmp_path / "shared"
    wheres = ["gender=Women", "gender=Men", "gender=Women", "gender=Men"]
    pids = [forkserver.start("index", catalog, "--out", out, *BUILD_ARGS, "--where", w) for w in wheres]
    runs = [forkserver.wait(pid) for pid in pids]
    refused = [r for r in runs if r.returncode != 0]
    for run in refused:
        text = " ".join(run.output.split())
        assert "is being written by another `fashionrec index` run" in text, run.output
        assert "Traceback" not in run.output
    assert refused and len(refused) < len(runs)
    final = index_content(out)
    gender = final["where"]["gender"]
    gender = gender[0] if isinstance(gender, list) else gender
    reference = tmp_path / f"clean-{gender}"
    assert index(forkserver, catalog, reference, "--where", f"gender={gender}").returncode == 0
    assert final["vectors"] == index_content(reference)["vectors"]
    assert {row["gender"] for row in final["products"].values()} == {gender}
    assert_tidy(out)

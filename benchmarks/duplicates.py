"""The near-duplicate scan on a real index: speed, recall on byte-identical image files, the extra pairs.

Usage (figures in benchmarks/RESULTS.md and the README's "Near-duplicates")::

    .venv/bin/python benchmarks/duplicates.py --index INDEX_DIR [--threshold D] [--sample 100] \\
        [--picture docs/duplicates-sample.png] [--json OUT.json]

``INDEX_DIR`` is an index of the real catalog, e.g. the whole shared catalog:
``fashionrec index ../shared/fashion-product-images-small --out all-lite0 --backbone efficientnet_lite0``.

What it does:

* runs the scan as ``fashionrec duplicates INDEX_DIR`` does (the automatic
  threshold unless ``--threshold``), timed, with the threshold's estimate;
* groups the index's image files by their SHA-1: byte-identical files are
  certain duplicates. Recall = byte-identical groups wholly inside one found
  group / all byte-identical groups (and the same for the pairs);
* the *extra pairs*: pairs the scan joined whose files are not byte-identical.
  ``--picture`` draws a random sample of ``--sample`` of them side by side, by
  distance, to judge by eye whether each is the same picture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--threshold", type=float, default=None, help="default: the automatic threshold")
    parser.add_argument("--sample", type=int, default=100, help="extra pairs pictured (random sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picture", type=Path, default=None, help="PNG of the sampled extra pairs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from fashionrec.recommend import Recommender

    started = time.perf_counter()
    rec = Recommender.load(args.index)
    opened = time.perf_counter() - started
    scan = rec.duplicates(args.threshold)
    print(f"index: {args.index} ({len(rec):,} products, {rec.index.backbone}); opened in {opened:.1f} s")
    print(f"threshold {scan.threshold:.4f}: {scan.notes.get('threshold', 'given')}")
    print(f"scan: {scan.seconds:.1f} s, {len(scan.groups)} groups, {scan.products_in_groups:,} products in groups")

    files = defaultdict(list)  # sha1 -> product ids
    for pid, rel in zip(rec.products["id"].tolist(), rec.products["image"].tolist()):
        files[hashlib.sha1((rec.catalog_root / rel).read_bytes()).hexdigest()].append(pid)
    identical = [sorted(ids) for ids in files.values() if len(ids) > 1]
    group_of = {pid: n for n, g in enumerate(scan.groups) for pid in g.ids}
    whole = sum(1 for ids in identical if len({group_of.get(pid, -1 - i) for i, pid in enumerate(ids)}) == 1)
    identical_pairs = {(a, b) for ids in identical for a, b in combinations(ids, 2)}
    together = sum(1 for a, b in identical_pairs if a in group_of and group_of.get(a) == group_of.get(b))
    print(f"byte-identical image files: {len(identical)} groups, {sum(map(len, identical)):,} files; "
          f"groups found whole: {whole} (recall {whole / max(len(identical), 1):.3f}); "
          f"pairs in one group: {together} of {len(identical_pairs)}")

    found_pairs = [(a, b, d) for g in scan.groups for a, b, d in g.pairs]
    extra = [(a, b, d) for a, b, d in found_pairs if (min(a, b), max(a, b)) not in identical_pairs]
    print(f"pairs within the threshold: {len(found_pairs):,}; not byte-identical (extra): {len(extra)}")
    sample = sorted(random.Random(args.seed).sample(extra, min(args.sample, len(extra))), key=lambda e: e[2])
    if args.picture and sample:
        draw_pairs(rec, sample, args.picture)
        print(f"picture of {len(sample)} extra pairs: {args.picture}")
    if args.json:
        args.json.write_text(json.dumps({
            "index": str(args.index), "products": len(rec), "threshold": scan.threshold,
            "why": scan.notes.get("threshold"), "seconds": scan.seconds, "groups": len(scan.groups),
            "products_in_groups": scan.products_in_groups, "identical_groups": len(identical),
            "identical_groups_found": whole, "pairs": len(found_pairs), "extra_pairs": len(extra),
            "sample": [[a, b, d] for a, b, d in sample],
        }, indent=2) + "\n")


def draw_pairs(rec, pairs, target: Path, columns: int = 10) -> None:
    """The pairs side by side (two thumbnails and their distance per cell), by distance, in a grid."""
    from PIL import Image, ImageDraw

    cell_w, cell_h, thumb = 130, 100, (60, 80)
    rows = (len(pairs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (a, b, d) in enumerate(pairs):
        x, y = (n % columns) * cell_w, (n // columns) * cell_h
        for offset, pid in ((4, a), (66, b)):
            with Image.open(rec.image_source(pid)) as im:
                sheet.paste(im.convert("RGB").resize(thumb), (x + offset, y + 2))
        draw.text((x + 4, y + 84), f"{d:.3f}", fill="black")
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, optimize=True)


if __name__ == "__main__":
    sys.exit(main())

"""A picture of real photo queries and their results, as they are and brought to the catalog's look.

Usage (the README's "Quality" picture)::

    .venv/bin/python benchmarks/photo_examples.py --index all-lite0 --out docs/photo-queries.png \\
        [--photos ../shared/photo-queries/sq224] [--ids 10125 ...] [-k 5]

For each photo (named by product id), two rows: the results of the photo as
it is, then of the photo brought to the catalog's size and JPEG compression
(fashionrec's default), "Same kind first" on. The photo's own product is the
one to find.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--photos", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "photo-queries" / "sq224")
    parser.add_argument("--ids", nargs="*", default=None, help="product ids of the photos (default: 3 spread out)")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    from fashionrec.evaluation.real_photos import photo_files
    from fashionrec.recommend import Recommender
    from fashionrec.reports import recommendation_figure

    rec = Recommender.load(args.index)
    files = [p for p in photo_files(args.photos) if rec.has_product(p.stem)]
    if args.ids:
        chosen = [args.photos / f"{pid}.jpg" for pid in args.ids]
    else:
        chosen = [files[len(files) * i // 3] for i in range(3)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for photo in chosen:
            name = rec.query_product(photo.stem).get("productDisplayName")
            for matched in (False, True):
                results = rec.similar_to_image(photo, k=args.k, match_catalog=matched, prefer_kind=matched)
                own = "found first" if results["id"].iloc[0] == rec.query_product(photo.stem)["id"] else "not first"
                how = "brought to the catalog's look, same kind first" if matched else "as it is"
                png = Path(tmp) / f"{photo.stem}-{int(matched)}.png"
                recommendation_figure(rec, results, photo, png,
                                      title=f"photo of {name} ({photo.stem}), {how}: {own}")
                rows.append(Image.open(png).convert("RGB"))
        width = max(r.width for r in rows)
        sheet = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
        y = 0
        for r in rows:
            sheet.paste(r, (0, y))
            y += r.height
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.out, optimize=True)
    print(f"{args.out}: {len(chosen)} photos, {args.k} results each, as they are and matched")


if __name__ == "__main__":
    sys.exit(main())

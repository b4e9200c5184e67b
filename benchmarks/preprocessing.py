"""Which preprocessing and features rank best: centre crop vs pad, raw vs L2-normalised.

Usage::

    python benchmarks/preprocessing.py [--catalog ../shared/fashion-product-images-small]
        [--backbones efficientnet_lite0] [--resnet50-weights PATH] [--work /tmp/fashionrec-bench]

Builds one index per backbone and preprocessing mode of the women's-footwear
subset and prints the leave-one-out quality (``fashionrec evaluate``) of each
combination, with euclidean distance (the original design) on raw and on
L2-normalised features, and cosine. Catalog photos are 60x80 portraits on white:
a centre crop of a 256-px resize cuts the top and bottom of tall products,
padding to a square keeps the whole product.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.models import get_backbone  # noqa: E402
from fashionrec.catalog import ORIGINAL_SUBSET, load_catalog  # noqa: E402
from fashionrec.embedding import ImageEmbedder, build_index  # noqa: E402
from fashionrec.evaluation import evaluate_index, evaluate_photo_queries  # noqa: E402
from fashionrec.recommend import Recommender  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "fashion-product-images-small"))
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--resnet50-weights")
    parser.add_argument("--work", default="/tmp/fashionrec-bench")
    parser.add_argument("--photo-queries", type=int, default=200)
    args = parser.parse_args()

    catalog = load_catalog(args.catalog)
    print(f"women's footwear of {catalog.root}: {catalog.select(ORIGINAL_SUBSET).n_with_image:,} images")
    header = (f"{'backbone':19} {'preprocessing':13} {'features':10} {'metric':9} "
              f"{'P@10':>6} {'mAP@10':>7} {'nDCG@10':>7} {'hit@1':>6} {'P@10 colour':>11} {'photo hit@1':>11}")
    print(header)
    for name in args.backbones:
        weights = args.resnet50_weights if name == "resnet50" else None
        for mode in ("crop", "pad"):
            preprocessing = dataclasses.replace(get_backbone(name).preprocessing, mode=mode)
            out = Path(args.work) / f"prep-{name}-{mode}"
            build_index(catalog, out, embedder=ImageEmbedder(name, weights=weights, preprocessing=preprocessing),
                        where=ORIGINAL_SUBSET)
            photo = evaluate_photo_queries(Recommender.load(out, weights=weights), n=args.photo_queries, seed=0)
            for features, metric, normalize in (("raw", "euclidean", False), ("normalised", "euclidean", True),
                                                ("raw", "cosine", False)):
                r = evaluate_index(out, k=10, metric=metric, normalize=normalize)
                colour = evaluate_index(out, k=10, metric=metric, normalize=normalize,
                                        relevance="articleType+baseColour")
                o = r.overall
                photo_text = f"{photo.overall['hit@1']:11.3f}" if (metric, normalize) == ("euclidean", False) else ""
                print(f"{name:19} {mode:13} {features:10} {metric:9} {o['precision@10']:6.3f} {o['mAP@10']:7.3f} "
                      f"{o['nDCG@10']:7.3f} {o['hit@1']:6.3f} {colour.overall['precision@10']:11.3f} {photo_text}",
                      flush=True)
    print(f"random precision@10: {r.baseline['precision@10']:.3f} (articleType), "
          f"{colour.baseline['precision@10']:.3f} (articleType+baseColour)")


if __name__ == "__main__":
    main()

"""Throughput and accuracy of each runtime vs PyTorch fp32 (raw embedding, no I/O).

Usage::

    python benchmarks/embed_raw.py [--backbones efficientnet_lite0 resnet50]
        [--resnet50-weights PATH] [--images 128] [--batch 32] [--repeats 3]

Accuracy: per-image cosine of each runtime's features vs PyTorch fp32 on real
images (product photos from ../shared/fashion-product-images-small/images plus
skimage.data pictures). Throughput: images/s at ``--batch``, best of ``--repeats``.
Without ``--resnet50-weights`` and without cached ImageNet weights, resnet50 runs
with a random-init weights file (throughput is meaningful, cosines are not).
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.backbones import get_backbone, preprocess, resnet50_cache_path  # noqa: E402
from fashionrec.runtimes import FeatureExtractor, _cosine_rows  # noqa: E402


def real_images(n: int) -> list[Image.Image]:
    from skimage import data

    imgs = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field",
                 "immunohistochemistry", "motorcycle_left", "retina", "camera", "page",
                 "text", "horse", "logo", "colorwheel", "moon"):
        try:
            arr = getattr(data, name)()
        except Exception:
            continue
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        imgs.append(Image.fromarray(arr))
    candidates = [ROOT.parent / "shared", Path("/work/shared")]
    for base in candidates:
        files = sorted(glob.glob(str(base / "fashion-product-images-small" / "images" / "*.jpg")))
        if files:
            rng = np.random.default_rng(0)
            for f in rng.choice(files, size=min(n, len(files)), replace=False):
                imgs.append(Image.open(f))
            break
    return imgs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    ap.add_argument("--resnet50-weights")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    images = real_images(args.images)
    cache = Path(tempfile.mkdtemp(prefix="fashionrec-bench-"))
    print(f"{len(images)} images; cache {cache}")
    for name in args.backbones:
        weights = None
        if name == "resnet50":
            weights = args.resnet50_weights
            if weights is None and not resnet50_cache_path().is_file():
                import torch
                import torchvision

                weights = cache / "resnet50-random.pth"
                torch.manual_seed(0)
                torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
                print("resnet50: RANDOM-INIT weights (cosines not meaningful)")
        p = get_backbone(name).preprocessing
        x = np.stack([preprocess(im, p) for im in images])
        ref = None
        for runtime, precision in (("torch", None), ("onnxruntime", None),
                                   ("openvino", "fp32"), ("openvino", "bf16")):
            fx = FeatureExtractor(name, weights=weights, runtime=runtime, cache_dir=cache,
                                  precision=precision)
            t0 = time.perf_counter()
            fx.load()
            load_s = time.perf_counter() - t0
            feats = np.concatenate([fx(x[i:i + args.batch]) for i in range(0, len(x), args.batch)])
            if ref is None:
                ref = feats
            cos = _cosine_rows(feats, ref)
            b = x[: args.batch]
            if len(b) < args.batch:
                b = np.resize(b, (args.batch, *b.shape[1:]))
            fx(b)  # warm-up
            best = min(_timed(fx, b) for _ in range(args.repeats))
            print(f"{name:20s} {fx.runtime_name:12s} {fx.precision:5s} "
                  f"{args.batch / best:7.1f} img/s  load {load_s:5.1f}s  "
                  f"cos min {cos.min():.6f} mean {cos.mean():.6f}", flush=True)


def _timed(fx, b) -> float:
    t = time.perf_counter()
    fx(b)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()

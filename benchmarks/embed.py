"""Embedding throughput: each runtime's raw model speed, and `fashionrec index` end to end.

Usage::

    python benchmarks/embed.py [--catalog ../shared/fashion-product-images-small]
        [--backbones efficientnet_lite0 resnet50] [--resnet50-weights PATH]
        [--images 2829] [--batch 32] [--repeats 5]

For each backbone, in one run:

* **raw**: images/s of the model alone on a preprocessed batch (``--batch``,
  at the backbone's input size), best of ``--repeats``, for every runtime and precision, with the
  per-image cosine of its features against PyTorch fp32 on real product photos
  (the stored-feature bar is >= 0.999);
* **end to end**: images/s of ``build_index`` from JPEG files on disk to the
  index folder written (decoding, preprocessing, model, checkpoints, final
  write), on the women's-footwear subset, with the runtime ``auto`` picks.
  The model is loaded (and exported, once) before the clock starts.

Targets: end to end >= 0.85x the fastest raw runtime that meets the bar for
ResNet50, >= 0.7x for EfficientNet-Lite0. Without ``--resnet50-weights`` or
torchvision's cached checkpoint, ResNet50 runs with randomly initialised
weights: its speed is the same, its cosines are then not meaningful.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.models import COSINE_BAR, FeatureExtractor, get_backbone, preprocess  # noqa: E402
from fashionrec.models.resnet import resnet50_cache_path  # noqa: E402
from fashionrec.settings import available_cpus  # noqa: E402
from fashionrec.catalog import ORIGINAL_SUBSET, load_catalog  # noqa: E402
from fashionrec.embedding import ImageEmbedder, build_index  # noqa: E402

RUNTIMES = (("torch", None), ("onnxruntime", None), ("openvino", "fp32"), ("openvino", "bf16"))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resnet50_weights(arg: str | None, work: Path) -> tuple[str | None, str]:
    if arg:
        return arg, "given weights file"
    if resnet50_cache_path().is_file():
        return None, "torchvision ImageNet weights"
    import torch
    import torchvision

    path = work / "resnet50-random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return str(path), "RANDOM-INIT weights (speed is representative; cosines are not)"


def raw_throughput(fx: FeatureExtractor, batch: np.ndarray, repeats: int) -> float:
    fx(batch)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fx(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "fashion-product-images-small"))
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--resnet50-weights")
    parser.add_argument("--images", type=int, default=None, help="limit the end-to-end run to this many images")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    # The PyTorch runtime uses PyTorch's own thread setting (fashionrec never changes it):
    # give it every CPU, as the other runtimes get.
    torch.set_num_threads(available_cpus())

    work = Path(tempfile.mkdtemp(prefix="fashionrec-bench-embed-"))
    catalog = load_catalog(args.catalog)
    subset = catalog.select(ORIGINAL_SUBSET)
    if args.images:
        subset.products = subset.products.iloc[: args.images]
    photos = [Image.open(p) for p in subset.image_paths()[:128] if p is not None]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; batch {args.batch}; "
          f"end to end on {subset.n_with_image:,} images of {ORIGINAL_SUBSET}")
    summary = []
    for name in args.backbones:
        weights, weights_text = resnet50_weights(args.resnet50_weights, work) if name == "resnet50" else (None, "")
        random_weights = weights_text.startswith("RANDOM")
        config = get_backbone(name)
        x = np.stack([preprocess(im, config.preprocessing) for im in photos])
        batch = x[: args.batch]
        print(f"\n{name} ({config.dim}-d) {weights_text}")
        print(f"  {'runtime':12} {'precision':9} {'raw img/s':>9}  {'min cos':>8} {'mean cos':>8}  meets bar")
        reference, fastest_ok, fastest_any = None, 0.0, 0.0
        for runtime, precision in RUNTIMES:
            fx = FeatureExtractor(name, weights=weights, runtime=runtime, precision=precision, cache_dir=work)
            try:
                fx.load()
            except Exception as exc:  # a runtime that cannot run here is reported, not fatal
                print(f"  {runtime:12} {precision or 'fp32':9} unavailable: {exc}")
                continue
            features = np.concatenate([fx(x[i : i + args.batch]) for i in range(0, len(x), args.batch)])
            reference = features if reference is None else reference
            cos = cosine_rows(features, reference)
            speed = raw_throughput(fx, batch, args.repeats)
            ok = bool(cos.min() >= COSINE_BAR)
            # With random weights a reduced precision's cosines say nothing about
            # the real model: only fp32 (a faithful conversion) counts then.
            verdict = "yes" if ok else "NO"
            if random_weights and fx.precision != "fp32":
                ok, verdict = False, "unverified (random weights)"
            fastest_any = max(fastest_any, speed)
            if ok:
                fastest_ok = max(fastest_ok, speed)
            print(f"  {fx.runtime_name:12} {fx.precision:9} {speed:9.1f}  {cos.min():8.5f} {cos.mean():8.5f}  "
                  f"{verdict}", flush=True)
            del fx

        embedder = ImageEmbedder(name, weights=weights, cache_dir=work)
        settings = embedder.settings()  # load and export before the clock starts
        out = work / f"index-{name}"
        run = build_index(subset, out, embedder=embedder, batch_size=args.batch)
        e2e = run.embedded / run.seconds
        target = 0.85 if name == "resnet50" else 0.7
        ratio = e2e / fastest_ok if fastest_ok else float("nan")
        print(f"  end to end ({settings['runtime']} {settings['precision']}): {run.embedded:,} images in "
              f"{run.seconds:.1f} s = {e2e:.1f} img/s = {ratio:.2f}x the fastest raw runtime meeting the bar "
              f"({fastest_ok:.1f}); target >= {target}x: {'met' if ratio >= target else 'NOT met'}; "
              f"{e2e / fastest_any:.2f}x the fastest raw of any precision ({fastest_any:.1f})")
        summary.append((name, fastest_ok, fastest_any, e2e, ratio, target))

    print("\nbackbone            fastest raw (bar)  fastest raw (any)  end to end  ratio  target")
    for name, ok, any_, e2e, ratio, target in summary:
        print(f"{name:19} {ok:18.1f} {any_:18.1f} {e2e:11.1f} {ratio:6.2f}  >= {target}")


if __name__ == "__main__":
    main()

"""Models layer: the backbone registry, preprocessing, weight files and the built-in backbones."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image

from fashionrec import network
from fashionrec.models import (
    DEFAULT_BACKBONE,
    Preprocessing,
    draft_target,
    get_backbone,
    list_backbones,
    load_classifier,
    load_model,
    preprocess,
    register_backbone,
)
from fashionrec.models import efficientnet, resnet
from fashionrec.errors import BackboneError, FashionrecError

import tiny_backbone

BUILTIN = ("resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.fixture(scope="module")
def resnet50_random_weights(tmp_path_factory):
    """A torchvision-layout resnet50 state dict (random init), so no download is needed."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet50-random.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def models(resnet50_random_weights):
    """One loaded feature model per registered backbone (resnet50 from the random file)."""
    return {name: load_model(name, resnet50_random_weights if name == "resnet50" else None)
            for name in BUILTIN}


def _features(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _photo(w=60, h=80, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr)


# --------------------------------------------------------------------------- registry
def test_registry_lists_builtin_backbones_with_their_descriptions():
    names = [c.name for c in list_backbones()]
    assert tuple(names[: len(BUILTIN)]) == BUILTIN  # the order `fashionrec backbones` shows
    assert DEFAULT_BACKBONE in names
    for c in list_backbones():
        assert get_backbone(c.name) is c
        assert c.weights and c.licence and c.description  # shown by `fashionrec backbones`


def test_importing_models_registers_backbones_without_loading_torch():
    code = textwrap.dedent("""
        import sys
        from PIL import Image
        from fashionrec.models import get_backbone, list_backbones, preprocess
        from fashionrec.models.runtimes import FeatureExtractor
        assert {"resnet50", "efficientnet_lite0"} <= {c.name for c in list_backbones()}
        preprocess(Image.new("RGB", (60, 80)), get_backbone("resnet50").preprocessing)
        FeatureExtractor("efficientnet_lite0", runtime="openvino")
        heavy = sorted(m for m in ("torch", "torchvision", "timm", "onnx", "onnxruntime", "openvino")
                       if m in sys.modules)
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_unknown_backbone_lists_known_names():
    with pytest.raises(BackboneError) as ei:
        get_backbone("vgg16")
    msg = str(ei.value)
    assert "vgg16" in msg
    for c in list_backbones():
        assert c.name in msg
    assert isinstance(ei.value, FashionrecError)
    with pytest.raises(BackboneError, match="vgg16"):
        load_model("vgg16")


def test_register_duplicate_rejected():
    with pytest.raises(BackboneError, match="already registered"):
        register_backbone(get_backbone("resnet50"))
    with pytest.raises(BackboneError, match="BackboneConfig; got dict"):
        register_backbone({"name": "x"})  # type: ignore[arg-type]


def test_backbone_registered_elsewhere_is_built_by_load_model():
    tiny_backbone.register()  # what a user's own module does: register_backbone(BackboneConfig(...))
    tiny_backbone.register()  # idempotent, as test modules rely on
    config = get_backbone("tiny-test")
    assert [c.name for c in list_backbones()].count("tiny-test") == 1
    model, identity = load_model("tiny-test")
    assert identity == "tiny-test:seed0" and not model.training
    x = np.stack([preprocess(_photo(seed=s), config.preprocessing) for s in (1, 2)])
    f = _features(model, x)
    assert f.shape == (2, config.dim) and not np.allclose(f[0], f[1])
    with pytest.raises(BackboneError, match="no classifier head; expected one of: resnet50, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        load_classifier("tiny-test")


@pytest.mark.parametrize("name", BUILTIN)
def test_backbone_contract(name, models):
    config = get_backbone(name)
    model, identity = models[name]
    assert not model.training
    assert isinstance(identity, str) and identity
    images = [_photo(seed=1), _photo(90, 50, seed=2), _photo(224, 224, seed=3)]
    x = np.stack([preprocess(im, config.preprocessing) for im in images])
    s = config.preprocessing.input_size
    assert x.shape == (3, 3, s, s) and x.dtype == np.float32
    f1 = _features(model, x)
    assert f1.shape == (3, config.dim) and f1.dtype == np.float32
    assert np.isfinite(f1).all()
    np.testing.assert_array_equal(f1, _features(model, x))  # deterministic
    # per-image result does not depend on the batch it is in (up to float noise)
    np.testing.assert_allclose(_features(model, x[1:2])[0], f1[1], rtol=1e-3, atol=1e-4)
    # distinct images give distinct features
    assert not np.allclose(f1[0], f1[1])


@pytest.mark.parametrize("name", BUILTIN)
def test_preprocessing_comes_from_config(name, models):
    config = get_backbone(name)
    small = dataclasses.replace(config.preprocessing, input_size=160, resize_size=182)
    x = preprocess(_photo(), small)
    assert x.shape == (3, 160, 160)
    model, _ = models[name]
    assert _features(model, x[None]).shape == (1, config.dim)
    # mean/std are taken from the config
    shifted = dataclasses.replace(config.preprocessing, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    raw = preprocess(_photo(), shifted)
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    norm = preprocess(_photo(), config.preprocessing)
    m = np.asarray(config.preprocessing.mean, np.float32)[:, None, None]
    sd = np.asarray(config.preprocessing.std, np.float32)[:, None, None]
    np.testing.assert_allclose(norm, (raw - m) / sd, rtol=1e-5, atol=1e-5)


def test_builtin_preprocessing_matches_the_reference_transforms():
    """Each backbone sees images as it was trained to: torchvision's and timm's evaluation transforms."""
    import timm
    from skimage import data
    from torchvision.models import ResNet50_Weights

    references = {"resnet50": ResNet50_Weights.IMAGENET1K_V1.transforms()}
    for name, variant in efficientnet.VARIANTS.items():
        cfg = timm.data.resolve_data_config({}, model=timm.create_model(variant.timm_name, pretrained=False))
        references[name] = timm.data.create_transform(**cfg)
    coffee = Image.fromarray(data.coffee())
    for name, reference in references.items():
        p = get_backbone(name).preprocessing
        one_level = 1.0 / (255 * min(p.std))  # one 8-bit level, normalised
        for image in (coffee, coffee.resize((60, 80)), coffee.resize((90, 50))):
            ours, ref = preprocess(image, p), reference(image).numpy()
            assert ours.shape == ref.shape == (3, p.input_size, p.input_size)
            assert np.abs(ours - ref).max() <= 2 * one_level * 1.01, name  # rounding of the one-step resize-crop
            assert np.abs(ours - ref).mean() <= one_level * 0.05, name


# --------------------------------------------------------------------------- Preprocessing
def test_preprocessing_round_trip_and_hashable():
    p = Preprocessing(input_size=192, resize_size=220, mode="pad", interpolation="bicubic",
                      mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), pad_fill=(0, 10, 20))
    d = p.to_dict()
    assert json.loads(json.dumps(d)) == d
    q = Preprocessing.from_dict(json.loads(json.dumps(d)))
    assert q == p and hash(q) == hash(p)
    assert len({p, q, get_backbone("resnet50").preprocessing}) == 2
    assert isinstance(q.mean, tuple) and isinstance(q.pad_fill, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.input_size = 10  # type: ignore[misc]


@pytest.mark.parametrize("change, match", [
    ({"mode": "zoom"}, "mode"),
    ({"interpolation": "nearest"}, "interpolation"),
    ({"input_size": 0}, "input_size"),
    ({"input_size": "224"}, "input_size"),
    ({"resize_size": 100}, "resize_size"),  # smaller than input_size in crop mode
    ({"std": [0.5, 0.0, 0.5]}, "std"),
    ({"mean": [0.5, 0.5]}, "mean"),
    ({"pad_fill": [255, 255, 300]}, "pad_fill"),
])
def test_preprocessing_validation(change, match):
    d = get_backbone("resnet50").preprocessing.to_dict() | change
    with pytest.raises(BackboneError, match=match) as ei:
        Preprocessing.from_dict(d)
    assert "got" in str(ei.value) and "expected" in str(ei.value)


def test_preprocessing_from_dict_keys():
    d = get_backbone("resnet50").preprocessing.to_dict()
    with pytest.raises(BackboneError, match="unknown keys.*crop_pct"):
        Preprocessing.from_dict(d | {"crop_pct": 0.875})
    d2 = dict(d)
    del d2["mean"]
    with pytest.raises(BackboneError, match="missing keys.*mean"):
        Preprocessing.from_dict(d2)
    with pytest.raises(BackboneError, match="mapping"):
        Preprocessing.from_dict([1, 2])  # type: ignore[arg-type]
    d3 = dict(d)
    del d3["pad_fill"]  # optional, has a default
    assert Preprocessing.from_dict(d3).pad_fill == (255, 255, 255)


def _unnormalise(x: np.ndarray, p: Preprocessing) -> np.ndarray:
    m = np.asarray(p.mean)[:, None, None]
    s = np.asarray(p.std)[:, None, None]
    return ((x * s + m) * 255).transpose(1, 2, 0)


def test_crop_cuts_and_pad_keeps_whole_portrait():
    # 60x80 portrait on white; the product is red and reaches the top and bottom edge rows
    arr = np.full((80, 60, 3), 255, np.uint8)
    arr[:8, 10:50] = (255, 0, 0)  # top band (e.g. a collar)
    arr[-8:, 10:50] = (0, 0, 255)  # bottom band (e.g. a hem)
    img = Image.fromarray(arr)
    base = get_backbone("resnet50").preprocessing
    crop = _unnormalise(preprocess(img, base), base)
    pad_p = dataclasses.replace(base, mode="pad")
    pad = _unnormalise(preprocess(img, pad_p), pad_p)
    assert crop.shape == pad.shape == (224, 224, 3)

    def has(colour_img, rgb):
        return (np.abs(colour_img - np.asarray(rgb)).max(axis=2) < 40).any()

    # crop: shorter side 60 -> 256, 80 -> 341, centre 224 rows: both bands are cut away
    assert not has(crop, (255, 0, 0)) and not has(crop, (0, 0, 255))
    # pad: the whole product is kept, bands at the very top and bottom
    assert has(pad[:20], (255, 0, 0)) and has(pad[-20:], (0, 0, 255))
    # ...and the side margins are the (white) pad fill
    assert np.allclose(pad[:, :20], 255, atol=2) and np.allclose(pad[:, -20:], 255, atol=2)
    # pad fill colour comes from the config
    black = dataclasses.replace(pad_p, pad_fill=(0, 0, 0))
    assert np.allclose(_unnormalise(preprocess(img, black), black)[:, :20], 0, atol=2)


def test_image_modes_are_converted_to_rgb():
    p = dataclasses.replace(get_backbone("resnet50").preprocessing, mode="pad")
    # RGBA: transparent pixels composite on white
    rgba = Image.new("RGBA", (60, 80), (0, 0, 0, 0))
    out = _unnormalise(preprocess(rgba, p), p)
    assert np.allclose(out, 255, atol=2)
    half = Image.new("RGBA", (60, 80), (0, 0, 0, 128))
    assert np.allclose(_unnormalise(preprocess(half, p), p)[:, 40:-40], 127, atol=3)
    # L: grey replicated into 3 channels
    grey = _unnormalise(preprocess(Image.new("L", (60, 80), 100), p), p)
    assert np.allclose(grey[:, 30:-30], 100, atol=2)
    # P: palette colours, and palette transparency composited on white
    pal = Image.new("RGB", (60, 80), (0, 128, 0)).convert("P", palette=Image.Palette.ADAPTIVE)
    out = _unnormalise(preprocess(pal, p), p)
    assert np.allclose(out[100, 112], (0, 128, 0), atol=3)
    pt = Image.new("P", (60, 80), 0)
    pt.putpalette([10, 20, 30] + [0] * 765)
    pt.info["transparency"] = 0
    assert np.allclose(_unnormalise(preprocess(pt, p), p), 255, atol=2)
    # CMYK
    cmyk = Image.new("RGB", (60, 80), (200, 50, 50)).convert("CMYK")
    out = _unnormalise(preprocess(cmyk, p), p)
    assert np.allclose(out[100, 112], (200, 50, 50), atol=6)
    for im in (rgba, pal, cmyk, Image.new("L", (60, 80))):
        assert preprocess(im, p).dtype == np.float32


def test_draft_target_decodes_large_jpeg_cheaply():
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((1200, 1600, 3)) * 255).astype(np.uint8)).save(
        buf, "JPEG")
    p = get_backbone("resnet50").preprocessing
    assert draft_target(p) == (256, 256)
    img = Image.open(io.BytesIO(buf.getvalue()))
    img.draft("RGB", draft_target(p))
    assert img.size[0] < 1600 and min(img.size) >= p.resize_size
    assert preprocess(img, p).shape == (3, 224, 224)
    pad = dataclasses.replace(p, mode="pad")
    assert draft_target(pad) == (224, 224)


# --------------------------------------------------------------------------- resnet50 weights
def test_resnet50_offline_error_is_fast_and_helpful(tmp_path, monkeypatch):
    # empty torch hub cache and an unreachable host, whatever this machine has
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(resnet, "RESNET50_HOST", ("127.0.0.1", 1))
    assert not resnet.resnet50_cache_path().exists()
    t = time.monotonic()
    with pytest.raises(BackboneError) as ei:
        load_model("resnet50")
    assert time.monotonic() - t < 30
    msg = str(ei.value)
    assert "--weights" in msg and "efficientnet_lite0" in msg
    assert str(tmp_path) in msg  # says where it looked
    assert not list(tmp_path.rglob("*.pth"))  # nothing half-downloaded


def test_network_probe_is_bounded(monkeypatch):
    """A connect (or DNS lookup) that hangs past its timeout still answers False in time.

    No packet leaves the machine: the connection attempt is replaced by one that hangs.
    """
    import socket
    import threading

    release = threading.Event()

    def hanging_connect(*args, **kwargs):
        release.wait(30)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    t = time.monotonic()
    try:
        assert network.reachable("catalog.example", 443, timeout=0.5) is False
        assert time.monotonic() - t < 5
    finally:
        release.set()
    monkeypatch.undo()
    assert network.reachable("127.0.0.1", 1, timeout=1.0) is False  # a closed local port: refused at once


def test_resnet50_uses_cached_checkpoint_without_network(tmp_path, monkeypatch,
                                                         resnet50_random_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(resnet, "reachable", lambda *a, **k: pytest.fail("probed network"))
    cached = resnet.resnet50_cache_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet50_random_weights.read_bytes())
    model, identity = load_model("resnet50")
    assert identity == "torchvision:ResNet50_Weights.IMAGENET1K_V1"
    x = preprocess(_photo(), get_backbone("resnet50").preprocessing)[None]
    reference, _ = load_model("resnet50", resnet50_random_weights)
    np.testing.assert_allclose(_features(model, x), _features(reference, x), rtol=1e-4, atol=1e-5)
    # a corrupt cached checkpoint is reported, not replaced by random weights
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="corrupt"):
        load_model("resnet50")


def test_resnet50_local_weights_file(tmp_path, resnet50_random_weights, models):
    import torchvision

    model, identity = models["resnet50"]
    digest = hashlib.sha256(resnet50_random_weights.read_bytes()).hexdigest()[:16]
    assert identity == f"file-sha256:{digest}"
    reference = torchvision.models.resnet50(weights=None)
    reference.load_state_dict(torch.load(resnet50_random_weights))
    reference.fc = torch.nn.Identity()
    reference.eval()
    x = preprocess(_photo(), get_backbone("resnet50").preprocessing)[None]
    np.testing.assert_allclose(_features(model, x), _features(reference, x), rtol=1e-4, atol=1e-5)
    # {"state_dict": ...} wrapper is accepted too, same weights -> same features
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": torch.load(resnet50_random_weights), "epoch": 3}, wrapped)
    model2, identity2 = load_model("resnet50", wrapped)
    assert identity2.startswith("file-sha256:") and identity2 != identity
    np.testing.assert_allclose(_features(model2, x), _features(model, x), rtol=1e-5, atol=1e-6)


def test_bad_weights_files(tmp_path, resnet50_random_weights):
    sd = torch.load(resnet50_random_weights)
    del sd["layer1.0.conv1.weight"]
    sd["head.weight"] = torch.zeros(3)
    bad = tmp_path / "bad-keys.pth"
    torch.save(sd, bad)
    with pytest.raises(BackboneError) as ei:
        load_model("resnet50", bad)
    msg = str(ei.value)
    assert "bad-keys.pth" in msg and "layer1.0.conv1.weight" in msg and "head.weight" in msg
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BackboneError, match="garbage.pth"):
        load_model("resnet50", garbage)
    with pytest.raises(BackboneError, match="does not exist"):
        load_model("resnet50", tmp_path / "missing.pth")
    # lite0 weights into resnet50: wrong architecture
    lite = efficientnet.default_weights()
    with pytest.raises(BackboneError, match="missing keys"):
        load_model("resnet50", lite)


# --------------------------------------------------------------------------- efficientnet_lite0, 1, 2
LITES = tuple(efficientnet.VARIANTS)


@pytest.mark.parametrize("name", LITES)
def test_lite_key_mapping_covers_every_key(name):
    import timm

    sd = torch.load(efficientnet.default_weights(name), map_location="cpu")
    model = timm.create_model(efficientnet.VARIANTS[name].timm_name, pretrained=False)
    mapped = efficientnet.lukemelas_to_timm(sd, model)
    assert set(mapped) == set(model.state_dict())
    assert mapped["blocks.1.0.conv_pwl.weight"] is sd["_blocks.1._project_conv.weight"]
    assert mapped["blocks.0.0.conv_pw.weight"] is sd["_blocks.0._project_conv.weight"]
    assert mapped["classifier.weight"] is sd["_fc.weight"]


@pytest.mark.parametrize("name", LITES)
def test_lite_classifies_espresso(name):
    from skimage import data

    model, identity = load_classifier(name)
    digest = hashlib.sha256(efficientnet.default_weights(name).read_bytes()).hexdigest()[:16]
    assert digest in identity and identity.startswith(efficientnet.VARIANTS[name].package)
    x = preprocess(Image.fromarray(data.coffee()), get_backbone(name).preprocessing)
    assert x.shape == (3, efficientnet.VARIANTS[name].input_size, efficientnet.VARIANTS[name].input_size)
    with torch.inference_mode():
        probs = model(torch.from_numpy(x)[None]).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == 967, top5  # ImageNet "espresso"
    assert probs[967] > 0.5
    cat = preprocess(Image.fromarray(data.chelsea()), get_backbone(name).preprocessing)
    with torch.inference_mode():
        cat_top = model(torch.from_numpy(cat)[None]).topk(3).indices[0].tolist()
    assert set(cat_top) & {281, 282, 285}  # tabby / tiger cat / Egyptian cat


def test_lite0_local_weights_in_timm_layout(tmp_path, models):
    model, identity = models["efficientnet_lite0"]
    classifier, _ = load_classifier("efficientnet_lite0")
    path = tmp_path / "lite0-timm.pth"
    torch.save(classifier.state_dict(), path)
    model2, identity2 = load_model("efficientnet_lite0", path)
    assert identity2.startswith("file:file-sha256:") and identity2 != identity
    x = preprocess(_photo(), get_backbone("efficientnet_lite0").preprocessing)[None]
    np.testing.assert_allclose(_features(model2, x), _features(model, x), rtol=1e-5, atol=1e-6)

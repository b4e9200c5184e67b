"""Weight files: reading state dicts, loading them strictly, identifying them by checksum.

Backbones build their networks on PyTorch's ``meta`` device (no wasted random
initialisation), then load every tensor from a state dict with
:func:`load_strict`: a file that does not fit the architecture exactly is
refused with the names of the keys at fault, and a network left with any
tensor not loaded (still on ``meta``) is refused by :func:`check_materialised`.
Nothing here falls back to random weights.

PyTorch is imported only when a function needs it.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any, Mapping

from ..errors import BackboneError

STATE_DICT_WRAPPERS = ("state_dict", "model", "model_state_dict")
"""Keys under which training checkpoints commonly nest the state dict; the first present is used."""


def resolve_weights_path(weights: str | Path | None) -> Path | None:
    """A user-given weights file as a ``Path`` (``~`` expanded), or ``None`` for "the backbone's own".

    Raises :class:`BackboneError` when the path is not an existing file.
    """
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneError(f"weights file {str(path)!r} does not exist or is not a file; "
                            "expected a PyTorch state-dict file (.pth/.pt)")
    return path


def file_sha256(path: Path, n: int = 16) -> str:
    """The first ``n`` hex digits of the file's SHA-256 (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def read_state_dict(path: Path, backbone: str) -> dict[str, Any]:
    """Read a ``torch.save``'d state dict (name -> tensor) from ``path``, tensors on CPU.

    Accepts a plain state dict or one nested under a key of
    :data:`STATE_DICT_WRAPPERS`; strips a ``module.`` prefix present on every key
    (``DataParallel`` checkpoints). Loads with ``weights_only=True`` (no arbitrary
    pickles). Raises :class:`BackboneError` naming the file and ``backbone`` when
    the file cannot be read or holds something else.
    """
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds
        raise BackboneError(f"weights file {str(path)!r} for backbone {backbone} could not be read "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                            "expected a PyTorch state-dict file saved with torch.save") from None
    if isinstance(obj, Mapping):
        for key in STATE_DICT_WRAPPERS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise BackboneError(f"weights file {str(path)!r} for backbone {backbone} holds a "
                            f"{type(obj).__name__}, expected a state dict (name -> tensor) "
                            "or {'state_dict': ...}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_strict(model, sd: Mapping[str, Any], path: Path | str, backbone: str, layout: str) -> None:
    """Load ``sd`` into ``model`` (in place, tensors assigned): keys and shapes must match exactly.

    ``path`` and ``backbone`` name the source in errors; ``layout`` says what
    state dict was expected (e.g. ``"torchvision/timm resnet50"``). A mismatch
    raises :class:`BackboneError` with the counts and first names of missing
    keys, unexpected keys and shape mismatches; then :func:`check_materialised`.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    bad_shape = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
                 for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (first: {'; '.join(bad_shape[:3])})")
        raise BackboneError(f"weights file {str(path)!r} does not fit backbone {backbone}: "
                            f"{'; '.join(parts)}; expected a {layout} state dict")
    model.load_state_dict(sd, strict=True, assign=True)
    check_materialised(model, path)


def check_materialised(model, path: Path | str) -> None:
    """Raise :class:`BackboneError` if any parameter or buffer of ``model`` is still on the meta device.

    Networks are built on ``meta``; a tensor no state dict filled would otherwise
    fail later, or be silently random.
    """
    left = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers())
            if t.is_meta]
    if left:
        raise BackboneError(f"weights {str(path)!r} left tensors uninitialised "
                            f"(first: {', '.join(left[:5])}); expected a complete state dict")

"""Where fashionrec keeps files of its own, and how many threads it uses.

One place decides the cache folder, so every stage agrees on it:

* ``$FASHIONREC_CACHE`` when set (the cache *root*),
* else the platform's user cache folder for "fashionrec" (platformdirs:
  ``~/.cache/fashionrec`` on Linux, ``~/Library/Caches/fashionrec`` on macOS).

Below the root, each stage has its own folder: :func:`models_cache_dir`
(exported ONNX / OpenVINO models) and :func:`sample_cache_dir` (the generated
offline sample catalog). Nothing is created here; callers create what they write.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FASHIONREC_CACHE"
"""Environment variable naming the cache root."""

SAMPLE_VERSION = "sample-v1"
"""Folder name of the generated sample catalog (bumped when the drawings change)."""


def cache_dir() -> Path:
    """The cache root: ``$FASHIONREC_CACHE``, else the user cache folder (platformdirs)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fashionrec", appauthor=False))


def models_cache_dir() -> Path:
    """Exported runtime models: ``<cache root>/models``."""
    return cache_dir() / "models"


def sample_cache_dir() -> Path:
    """The generated sample catalog: ``<cache root>/sample-v1``."""
    return cache_dir() / SAMPLE_VERSION


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)

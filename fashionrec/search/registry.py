"""The engine registry: search engines by name.

``exact``, ``ivf``, ``hnsw`` and ``milvus`` are registered here (the FAISS
engines import FAISS only when one is built or loaded, the Milvus engine
pymilvus only when it first contacts a server). :func:`create_engine` makes an
empty engine, :func:`load_engine` opens one saved in an index folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UnknownEngineError
from .base import SearchEngine
from .exact import ExactEngine
from .faiss_engines import HNSWEngine, IVFEngine
from .milvus.engine import MilvusEngine

DEFAULT_ENGINE = "exact"

_ENGINES: dict[str, type[SearchEngine]] = {}


def register_engine(cls: type[SearchEngine]) -> type[SearchEngine]:
    """Register a :class:`SearchEngine` subclass under its ``name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, SearchEngine)) or not cls.name:
        raise TypeError(f"expected a SearchEngine subclass with a name, got {cls!r}")
    if _ENGINES.get(cls.name, cls) is not cls:
        raise ValueError(f"search engine {cls.name!r} is already registered ({_ENGINES[cls.name].__name__})")
    _ENGINES[cls.name] = cls
    return cls


def list_engines() -> list[str]:
    """Names of the registered engines."""
    return sorted(_ENGINES)


def engine_class(name: str) -> type[SearchEngine]:
    """The engine class registered as ``name``; UnknownEngineError otherwise."""
    try:
        return _ENGINES[name]
    except (KeyError, TypeError):
        raise UnknownEngineError(f"unknown search engine {name!r}; expected one of {', '.join(list_engines())}") from None


def create_engine(name: str = DEFAULT_ENGINE, **params: Any) -> SearchEngine:
    """An empty engine ``name`` with its parameters (``metric=...`` and engine-specific ones)."""
    return engine_class(name)(**params)


def load_engine(
    name: str,
    folder: str | os.PathLike,
    vectors: np.ndarray,
    ids: np.ndarray,
    attributes: pd.DataFrame | None = None,
) -> SearchEngine:
    """Open engine ``name`` saved in ``folder`` over an index's vectors, ids and attributes."""
    return engine_class(name).load(Path(folder), vectors, ids, attributes)


register_engine(ExactEngine)
register_engine(IVFEngine)  # FAISS is imported when one is first built or loaded, not here
register_engine(HNSWEngine)
register_engine(MilvusEngine)  # pymilvus is imported when a server is first contacted, not here

"""Stage 4 — nearest-neighbour search engines behind one interface.

:class:`SearchEngine` (in :mod:`.base`) is the contract; :func:`create_engine`
makes one by name from the registry; ``exact`` (:class:`ExactEngine`) is the
engine every index has.
"""

from ..catalog.filters import Filter
from ..validation import METRICS
from .base import RangeResult, SearchEngine
from .exact import ExactEngine, ExactScan, id_tie_order
from .registry import DEFAULT_ENGINE, create_engine, engine_class, list_engines, load_engine, register_engine

__all__ = [
    "DEFAULT_ENGINE", "METRICS", "ExactEngine", "ExactScan", "Filter", "RangeResult", "SearchEngine", "create_engine",
    "engine_class", "id_tie_order", "list_engines", "load_engine", "register_engine",
]

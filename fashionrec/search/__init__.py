"""Stage 4 — nearest-neighbour search engines behind one interface.

:class:`SearchEngine` (in :mod:`.base`) is the contract; :func:`create_engine`
makes one by name from the registry; ``exact`` (:class:`ExactEngine`) is the
engine every index has; ``ivf`` and ``hnsw`` (:mod:`.faiss_engines`) are the
approximate FAISS engines, built ahead and saved in the index folder (:mod:`.saved`);
``milvus`` (:mod:`.milvus`) keeps the vectors in a Milvus server's collection.
"""

from ..catalog.filters import Filter
from ..validation import METRICS
from .base import RangeResult, SearchEngine
from .exact import ExactEngine, ExactScan, id_tie_order
from .approximate import ApproximateEngine
from .faiss_engines import HNSWEngine, IVFEngine
from .milvus import MilvusEngine, MilvusError, push_index
from .registry import DEFAULT_ENGINE, create_engine, engine_class, list_engines, load_engine, register_engine
from .saved import SavedEngine, build_saved_engine, open_saved_engine, saved_engines, update_saved_engines

__all__ = [
    "DEFAULT_ENGINE", "METRICS", "ApproximateEngine", "ExactEngine", "ExactScan", "Filter", "HNSWEngine", "IVFEngine",
    "MilvusEngine", "MilvusError", "RangeResult", "SavedEngine", "SearchEngine", "build_saved_engine",
    "create_engine", "engine_class", "id_tie_order", "list_engines", "load_engine", "open_saved_engine",
    "push_index", "register_engine", "saved_engines", "update_saved_engines",
]

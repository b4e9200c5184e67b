"""Stage 5 — recommendations: the service behind every interface, and its result contracts."""

from .browse import FACETS, MAX_PER_PAGE
from .kind import KindPrediction, predict_kind
from .results import EngineInfo, IndexInfo, Product, ProductPage, Query, Recommendation, Recommendations
from .service import HIDDEN_COLUMNS, Recommender

__all__ = [
    "FACETS",
    "HIDDEN_COLUMNS",
    "MAX_PER_PAGE",
    "EngineInfo",
    "IndexInfo",
    "KindPrediction",
    "Product",
    "ProductPage",
    "Query",
    "Recommendation",
    "Recommendations",
    "Recommender",
    "predict_kind",
]

"""Stage 5 — recommendations: the service behind every interface, and the result contract."""

from .results import Query, Recommendation, Recommendations
from .service import HIDDEN_COLUMNS, Recommender

__all__ = ["HIDDEN_COLUMNS", "Query", "Recommendation", "Recommendations", "Recommender"]

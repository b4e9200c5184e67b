"""Stage 6 — measured retrieval quality of an index.

- :mod:`.metrics` — precision@k, AP@k, nDCG@k, hit@1 on rankings, and their
  expectation under a random ranking.
- :mod:`.leave_one_out` — :func:`evaluate_index`: every labelled product
  queries all the others; a result is relevant when it shares the query's
  articleType (or articleType and baseColour).
- :mod:`.photo_queries` — :func:`evaluate_photo_queries`: simulated shopper
  photos (:func:`rephotograph`) of catalog products, and whether each finds its
  own product.
- :mod:`.real_photos` — :func:`evaluate_photo_folder`: the same for a folder of
  real photos named by product id (``fashionrec evaluate --photos DIR``).
- :mod:`.summary` — the pydantic models of ``evaluation.json`` /
  ``fashionrec evaluate --json`` (schema: ``EvaluationSummary.model_json_schema()``).
- :mod:`.report` — :func:`write_evaluation`: ``evaluation.json`` and the
  per-articleType precision chart.
"""

from .leave_one_out import RELEVANCE, EvaluationResult, evaluate_index
from .metrics import (
    average_precision_at_k,
    batch_metrics,
    hit_at_1,
    ndcg_at_k,
    precision_at_k,
    random_baseline,
)
from .photo_queries import SIMULATIONS, PhotoQueryResult, evaluate_photo_queries, rephotograph
from .real_photos import PhotoFolderResult, evaluate_photo_folder
from .report import CHART_FILE, EVALUATION_FILE, write_evaluation
from .summary import ClassRow, EvaluationSummary, IndexSource, NoSource, PhotoFolderSummary, PhotoQuerySummary

__all__ = [
    "CHART_FILE",
    "EVALUATION_FILE",
    "RELEVANCE",
    "ClassRow",
    "EvaluationResult",
    "EvaluationSummary",
    "IndexSource",
    "NoSource",
    "PhotoFolderResult",
    "PhotoFolderSummary",
    "PhotoQueryResult",
    "PhotoQuerySummary",
    "SIMULATIONS",
    "average_precision_at_k",
    "batch_metrics",
    "evaluate_index",
    "evaluate_photo_folder",
    "evaluate_photo_queries",
    "hit_at_1",
    "ndcg_at_k",
    "precision_at_k",
    "random_baseline",
    "rephotograph",
    "write_evaluation",
]

"""The shape of ``evaluation.json`` and of ``fashionrec evaluate --json``, as pydantic models.

:class:`EvaluationSummary` is the whole document; its JSON schema is
``EvaluationSummary.model_json_schema()``. Dump with
``summary.model_dump(mode="json")``: keys come out in field order, metric
values are plain floats, and a missing or non-finite value (NaN, inf) is
``null`` (every value goes through :func:`fashionrec.output.json_value`).

Metric names carry the cut-off k (``precision@10``, ``mAP@10``, ``nDCG@10``,
``hit@1``; ``recall@10`` and ``MRR`` for photo queries), so the metric tables
are mappings from name to value, in the order they were computed.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..output import json_value

__all__ = ["ClassRow", "EvaluationSummary", "IndexSource", "NoSource", "PhotoClassRow", "PhotoFolderSummary",
           "PhotoQuerySummary"]

MetricValue = Annotated[Optional[float], BeforeValidator(json_value)]
"""A metric value in [0, 1]; NumPy scalars are unwrapped, NaN and inf become None (``null``)."""

Count = Annotated[int, BeforeValidator(json_value)]
"""A non-negative whole number; NumPy integers are unwrapped."""

Metrics = dict[str, MetricValue]
"""Metric name (e.g. ``precision@10``) → value, in computation order."""


class IndexSource(BaseModel):
    """The index folder that was evaluated."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    index: str = Field(description="Path of the index folder, as given.")
    backbone: Optional[str] = Field(description="The backbone named in the index manifest (null when absent).")
    dim: Count = Field(description="Embedding dimension.")


class NoSource(BaseModel):
    """No index folder: the embeddings and products were given directly. Written as ``{}``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ClassRow(BaseModel):
    """One query articleType: its number of queries, then the mean of each metric over them.

    The metric columns are named with k — ``precision@k``, ``mAP@k``,
    ``nDCG@k``, ``hit@1``, then ``random_precision@k`` (the random baseline) —
    and follow ``articleType`` and ``n_queries`` in that order.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)

    articleType: str = Field(description="The queries' articleType.")
    n_queries: Count = Field(description="Queries of this articleType.")
    __pydantic_extra__: dict[str, MetricValue] = Field(init=False)


class PhotoQuerySummary(BaseModel):
    """Simulated new photos of catalog products, each searched among all products."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    n_queries: Count = Field(description="Photos searched (products whose image could be opened).")
    n_products: Count = Field(description="Products searched among.")
    k: Count = Field(ge=1, description="Cut-off rank.")
    overall: Metrics = Field(
        description="hit@1 (own product first), recall@k (own product in the top k), "
        "MRR (mean reciprocal rank, 0 past k)."
    )
    chance: Metrics = Field(description="The same metrics for a uniformly random ranking of the products.")
    per_kind: dict[str, Metrics] = Field(
        default_factory=dict,
        description="The same metrics per kind of simulated photo (reframed, upscaled, squashed, padded).",
    )
    match_catalog: bool = Field(
        default=True, description="Whether the photos were first made to look like catalog images (size, JPEG)."
    )
    seconds: float = Field(description="Wall-clock time in seconds, rounded to milliseconds.")


class PhotoClassRow(BaseModel):
    """The real photos of one articleType: how many, then hit@1, recall@k and MRR over them."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    articleType: str = Field(description="The articleType of the photographed products.")
    n_queries: Count = Field(description="Photos of this articleType.")
    __pydantic_extra__: dict[str, MetricValue] = Field(init=False)


class PhotoFolderSummary(BaseModel):
    """Real photos of catalog products (a folder of files named by product id), each searched among all products."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    folder: str = Field(description="The folder of photos, as given.")
    n_photos: Count = Field(description="Picture files in the folder named by a product id.")
    n_queries: Count = Field(description="Photos searched: those whose product is in the index and that could be read.")
    not_in_index: Count = Field(description="Photos left out because their product is not in the index.")
    unreadable: list[dict[str, str]] = Field(
        default_factory=list, description="Photos left out because they could not be read: file and reason."
    )
    n_products: Count = Field(description="Products searched among.")
    k: Count = Field(ge=1, description="Cut-off rank.")
    match_catalog: bool = Field(description="Whether the photos were first made to look like catalog images.")
    overall: Metrics = Field(description="hit@1, recall@k (the product in the top k) and MRR (0 past k).")
    chance: Metrics = Field(description="The same metrics for a uniformly random ranking of the products.")
    per_class: list[PhotoClassRow] = Field(description="The same metrics per articleType, most photos first.")
    kind_accuracy: Metrics = Field(
        default_factory=dict,
        description="Per attribute (articleType, baseColour), the share of photos whose kind predicted from their "
                    "10 nearest products (the majority value) is their product's.",
    )
    seconds: float = Field(description="Wall-clock time in seconds, rounded to milliseconds.")


class EvaluationSummary(BaseModel):
    """Leave-one-out retrieval quality of an index (see :mod:`fashionrec.evaluation.leave_one_out`)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    k: Count = Field(ge=1, description="Cut-off rank.")
    relevance: str = Field(
        description="What a relevant result shares with its query: articleType or articleType+baseColour."
    )
    metric: str = Field(description="Distance that ranked the results: euclidean or cosine.")
    engine: str = Field(
        default="exact",
        description="Search engine that ranked the results (exact, or an approximate engine saved in the index).",
    )
    normalize: bool = Field(description="Whether the features were L2-normalised before ranking.")
    n_products: Count = Field(description="Products in the index (all are searched among).")
    n_queries: Count = Field(description="Products that served as queries.")
    n_skipped: Count = Field(
        description="Products that could not query: unlabelled, or no other product shares their label."
    )
    sample: Optional[Count] = Field(description="Queries requested by --sample (null: all).")
    seed: int = Field(description="Seed of the query sample and of the photo queries.")
    seconds: float = Field(description="Wall-clock time in seconds, rounded to milliseconds.")
    source: IndexSource | NoSource = Field(description="The index folder evaluated ({} when given as arrays).")
    overall: Metrics = Field(description="Mean over queries of precision@k, mAP@k, nDCG@k and hit@1.")
    baseline: Metrics = Field(description="The same means for a uniformly random ranking (expected values).")
    per_class: list[ClassRow] = Field(description="One row per query articleType, most queries first (ties by name).")
    photo_queries: Optional[PhotoQuerySummary] = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Simulated shopper photos (present only when they were run).",
    )
    real_photos: Optional[PhotoFolderSummary] = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Real photos of catalog products, from --photos DIR (present only when given).",
    )

"""The result contracts: recommendations, catalog pages and index information, as typed data and as JSON.

Every interface that hands recommendations out — ``fashionrec recommend
--json``, the web API, Python callers who want JSON — goes through
:class:`Recommendations`, so they all write the same shape::

    {
      "query":   {"id": 59051, "gender": "Women", ..., "image": "images/59051.jpg"}
                 or {"image": "photo.jpg"} for a photo query,
      "results": [{"id": 2886, "distance": 11.42, "gender": "Women", ...}, ...]
    }

``query`` is the catalog row of the query product (every column of the index
but its bookkeeping ones) or what the photo was; each result is ``id``,
``distance`` (the metric's distance, see :data:`fashionrec.validation.METRICS`)
and then the product's columns in index order. Missing values are ``null``.
When near-duplicates were collapsed (``dedupe``), each result and a product
query also have ``duplicates``: the ids collapsed into them.
:meth:`Recommendations.model_json_schema` gives the JSON schema.

Browsing the catalog (:meth:`Recommender.browse`) answers a
:class:`ProductPage`: one page of :class:`Product` rows (``id`` and the
product's columns, in index order, missing values ``null``) with the facet
counts of the selection; :meth:`Recommender.info` answers an
:class:`IndexInfo`, with an :class:`EngineInfo` per search engine saved in the
index folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional, Union

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..evaluation.summary import EvaluationSummary
from ..output import json_value, plain_values

JsonScalar = Union[str, int, float, bool, None]


class Query(BaseModel):
    """What was asked: a catalog product (``id`` and its columns) or a photo (``image``: its path or URL).

    Only ``id`` is declared: the other keys keep the order of the index's
    columns, as the JSON has always had them.
    """

    model_config = ConfigDict(extra="allow")

    id: int | str | None = Field(default=None, description="Product id, for a query by catalog product.")
    duplicates: Optional[list[Union[int, str]]] = Field(
        default=None,
        description=(
            "Only when near-duplicates were collapsed (dedupe) from a product query: ids of the products left "
            "out because they lie within the duplicate threshold of the query product itself."
        ),
    )
    predicted: Optional[dict[str, Any]] = Field(
        default=None,
        description=(
            "Only for a photo query with prefer_kind: the kind predicted from the photo's nearest products, "
            "{neighbours, values: {articleType, baseColour}, shares: {...}}; products of that articleType come first."
        ),
    )


class Recommendation(BaseModel):
    """One recommended product: its id, its distance to the query, then its attributes."""

    model_config = ConfigDict(extra="allow")

    id: int | str = Field(description="Product id.")
    distance: float = Field(description="Distance to the query (euclidean: L2; cosine: 1 - cosine similarity).")
    duplicates: Optional[list[Union[int, str]]] = Field(
        default=None,
        description=(
            "Only when near-duplicates were collapsed (dedupe): ids of the products left out because they lie "
            "within the duplicate threshold of this one, nearest to the query first."
        ),
    )


class Recommendations(BaseModel):
    """A query and its recommendations, nearest first."""

    query: Query
    results: list[Recommendation]

    @classmethod
    def from_frame(cls, query: Mapping[str, Any], results: pd.DataFrame) -> Recommendations:
        """From a query mapping and a :meth:`Recommender.similar` DataFrame (``id``, ``distance``, attributes)."""
        names = [str(name) for name in results.columns]
        columns = [plain_values(results[name]) for name in results.columns]
        return cls.from_records(query, [dict(zip(names, row)) for row in zip(*columns)])

    @classmethod
    def from_records(
        cls, query: Mapping[str, Any], records: list[Mapping[str, Any]], *, plain: bool = False
    ) -> Recommendations:
        """From a query mapping and result records (``id``, ``distance``, then the product's columns).

        ``plain=True`` says every value is already a plain JSON value (the
        :class:`Recommender` builds them so), which skips converting them one by one.
        """
        convert = dict if plain else _plain
        return cls(
            query=Query(**convert(query)),
            results=[Recommendation(**convert(record)) for record in records],
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; a photo query has no ``id`` key."""
        return {
            "query": self.query.model_dump(mode="json", exclude_unset=True),
            "results": [r.model_dump(mode="json", exclude_unset=True) for r in self.results],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The JSON text of :meth:`to_dict` (UTF-8 characters kept as they are).

        ``indent=None`` gives compact JSON written by pydantic's serializer (what
        the web API sends: it costs a fraction of ``json.dumps``); an indent gives
        the text ``fashionrec recommend --json`` has always printed.
        """
        if indent is None:
            return self.model_dump_json(exclude_unset=True)
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


class Product(BaseModel):
    """One catalog product: ``id``, then its columns in index order (attributes, ``image``, ``link``...).

    Only ``id`` is declared; missing values are ``null``.
    """

    model_config = ConfigDict(extra="allow")

    id: int | str = Field(description="Product id.")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Product:
        """From a catalog row (e.g. :meth:`Recommender.query_product`); NumPy values unwrapped, NaN/NA as None."""
        return cls(**_plain(record))


class ProductPage(BaseModel):
    """One page of the products matching a filter and a text, with the facet counts of the whole selection."""

    total: int = Field(ge=0, description="Products matching the filter and the text (all pages).")
    page: int = Field(ge=1, description="This page's number, from 1.")
    per_page: int = Field(ge=1, description="Products per page.")
    pages: int = Field(ge=0, description="Number of pages (0 when nothing matches).")
    products: list[Product] = Field(description="This page's products, in index order (empty past the last page).")
    facets: dict[str, dict[str, int]] = Field(
        description=(
            "Per facet attribute, value -> number of products matching the text and every filter but that "
            "attribute's own (so the other values of a filtered attribute keep their counts); values by count "
            "descending, then by value; missing values not counted; values with no product left out."
        )
    )


class EngineInfo(BaseModel):
    """A search engine saved in the index folder (``engines/<name>/<metric>/``), as the manifest records it.

    The recall and latencies were measured when the engine was built or last
    updated: on catalog vectors held out from its training, against the exact
    engine (each query's own product excluded), at the search-time parameter
    the tuning chose. Figures the manifest does not hold are null.
    """

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="Engine name in the registry (ivf, hnsw, milvus).")
    metric: str = Field(description="The distance it was built for: euclidean or cosine.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The parameters it was built with (those of the engine's constructor)."
    )
    search_param: Optional[str] = Field(
        default=None, description="Name of its search-time parameter (nprobe for ivf, efSearch for hnsw)."
    )
    search_value: Optional[int] = Field(
        default=None, description="Value of the search-time parameter: the smallest reaching target_recall."
    )
    recall_at_10: Optional[float] = Field(
        default=None, ge=0, le=1,
        description="Measured recall@10: the share of the exact 10 nearest products the engine returns.",
    )
    recall_queries: Optional[int] = Field(
        default=None, ge=0, description="Held-out catalog products recall_at_10 and the latencies were measured on."
    )
    target_recall: Optional[float] = Field(default=None, description="The recall@10 the tuning aimed for.")
    p50_ms: Optional[float] = Field(default=None, description="Median time of one query for 10 results, in ms.")
    p99_ms: Optional[float] = Field(default=None, description="99th percentile of that time, in ms.")
    exact_below: Optional[int] = Field(
        default=None, ge=0,
        description="Filters keeping at most this many products are answered by the exact engine (measured).",
    )
    build_seconds: Optional[float] = Field(default=None, description="Wall-clock seconds its last build took.")
    vectors: Optional[int] = Field(default=None, ge=0, description="Vectors it holds.")
    saved: Optional[str] = Field(default=None, description="ISO 8601 UTC time it was last saved.")


class IndexInfo(BaseModel):
    """What an index folder holds and how it was made (from its manifest), and its evaluation when it has one."""

    backbone: str = Field(description="The backbone that computed the vectors (e.g. resnet50).")
    weights: Optional[str] = Field(description="Identity of the weights (source and checksum).")
    dim: int = Field(ge=0, description="Dimension D of the feature vectors.")
    count: int = Field(ge=0, description="Products in the index.")
    created: Optional[str] = Field(description="ISO 8601 UTC time the index was first built.")
    updated: Optional[str] = Field(description="ISO 8601 UTC time of its last (incremental) update.")
    engine: str = Field(description="The search engine answering queries (e.g. exact).")
    answering: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Per metric (euclidean, cosine), the engine that answers its queries: `engine`, or exact where "
            "`engine` is not built for that metric or was built for an earlier version of the index."
        ),
    )
    engines: list[EngineInfo] = Field(
        default_factory=list,
        description="The engines saved in the index folder, with their measured recall and latency ([]: none).",
    )
    preprocessing: Optional[str] = Field(description="How pictures are fitted to the input size: crop or pad.")
    features: str = Field(default="raw", description="Transform of the backbone's features: raw or power.")
    catalog_look: Optional[dict[str, Any]] = Field(
        default=None,
        description="What the catalog's images look like (width, height, JPEG quality, background), that photo "
                    "queries are brought to; null when unknown.",
    )
    runtime: Optional[str] = Field(default=None, description="Inference runtime that computed the vectors.")
    precision: Optional[str] = Field(default=None, description="Inference precision (fp32, bf16).")
    catalog_root: Optional[str] = Field(description="Catalog folder the picture paths are relative to.")
    catalog_where: dict[str, Any] = Field(
        default_factory=dict, description="The attribute filter that selected the indexed products ({}: all)."
    )
    skipped: int = Field(
        default=0, ge=0,
        description="Catalog products left out (no image, unreadable, too large...), listed in manifest.json.",
    )
    evaluation: Optional[EvaluationSummary] = Field(
        default=None, description="The index folder's evaluation.json (leave-one-out quality), null when absent."
    )


def _plain(record: Mapping[str, Any]) -> dict[str, JsonScalar]:
    return {str(key): json_value(value) for key, value in record.items()}

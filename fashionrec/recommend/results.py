"""The result contract: a query and its recommendations, as typed data and as JSON.

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
:meth:`Recommendations.model_json_schema` gives the JSON schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Union

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..output import json_value

JsonScalar = Union[str, int, float, bool, None]


class Query(BaseModel):
    """What was asked: a catalog product (``id`` and its columns) or a photo (``image``: its path or URL).

    Only ``id`` is declared: the other keys keep the order of the index's
    columns, as the JSON has always had them.
    """

    model_config = ConfigDict(extra="allow")

    id: int | str | None = Field(default=None, description="Product id, for a query by catalog product.")


class Recommendation(BaseModel):
    """One recommended product: its id, its distance to the query, then its attributes."""

    model_config = ConfigDict(extra="allow")

    id: int | str = Field(description="Product id.")
    distance: float = Field(description="Distance to the query (euclidean: L2; cosine: 1 - cosine similarity).")


class Recommendations(BaseModel):
    """A query and its recommendations, nearest first."""

    query: Query
    results: list[Recommendation]

    @classmethod
    def from_frame(cls, query: Mapping[str, Any], results: pd.DataFrame) -> Recommendations:
        """From a query mapping and a :meth:`Recommender.similar` DataFrame (``id``, ``distance``, attributes)."""
        records = results.to_dict("records")
        return cls(
            query=Query(**_plain(query)),
            results=[Recommendation(**_plain(record)) for record in records],
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; a photo query has no ``id`` key."""
        return {
            "query": self.query.model_dump(mode="json", exclude_unset=True),
            "results": [r.model_dump(mode="json") for r in self.results],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The JSON text (UTF-8 characters kept as they are)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _plain(record: Mapping[str, Any]) -> dict[str, JsonScalar]:
    return {str(key): json_value(value) for key, value in record.items()}

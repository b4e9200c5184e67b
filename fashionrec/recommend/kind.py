"""What kind of product a photo shows, from its nearest catalog products.

A shopper's photo carries no attributes; its nearest catalog products do: the
photo's own product when one is clearly nearest, else the articleType (and
colour) most of them share is the photo's predicted kind (:func:`predict_kind`); :meth:`~fashionrec.recommend.Recommender.similar_to_image`
can then rank products of that kind first (``prefer_kind=True``), so a photo of
heels gets heels, not the sandals that look alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

KIND_ATTRIBUTES: tuple[str, ...] = ("articleType", "baseColour")
"""The attributes predicted, in order; the first is the one ``prefer_kind`` ranks by."""

KIND_NEIGHBOURS = 10
"""Nearest products that vote."""

CLEAR_MATCH = 0.8
"""A nearest product at most this fraction of the second's distance is the photo's own product: its kind is taken."""


class KindPrediction(BaseModel):
    """The predicted value of each of :data:`KIND_ATTRIBUTES`, its support, and how it was decided."""

    neighbours: int = Field(description="Nearest catalog products consulted.")
    values: dict[str, Any] = Field(description="Attribute -> the predicted value (null: no neighbour has one).")
    shares: dict[str, float] = Field(
        description="Attribute -> the share of the neighbours (weighted by 1/rank) that have the predicted value."
    )
    clear_match: bool = Field(
        description="Whether the nearest product was clearly nearer than the next (the photo shows it): its "
                    "values were taken; otherwise the neighbours voted."
    )


def predict_kind(records: Sequence[dict[str, Any]], attributes: Sequence[str] = KIND_ATTRIBUTES) -> KindPrediction:
    """The kind of a photo from its nearest products ``records`` (nearest first, each with ``distance``).

    When the nearest product lies within :data:`CLEAR_MATCH` times the
    second's distance, the photo shows that product and its values are taken.
    Otherwise each neighbour votes with weight 1/rank (the nearest counts
    most, yet a consistent majority outvotes it); missing values do not vote.
    Both rules and the constants were chosen on the development photos and on
    catalog products queried as new ones (README, "Quality").
    """
    distances = [record.get("distance") for record in records[:2]]
    clear = (len(records) == 1 or (len(records) >= 2 and None not in distances
                                   and distances[0] <= CLEAR_MATCH * distances[1]))
    values: dict[str, Any] = {}
    shares: dict[str, float] = {}
    weights = [1.0 / rank for rank in range(1, len(records) + 1)]
    total = sum(weights) or 1.0
    for name in attributes:
        votes: Counter = Counter()
        for record, weight in zip(records, weights):
            if record.get(name) not in (None, ""):
                votes[record.get(name)] += weight
        if not votes:
            values[name], shares[name] = None, 0.0
            continue
        nearest = records[0].get(name)
        winner = nearest if clear and nearest not in (None, "") else votes.most_common(1)[0][0]
        values[name], shares[name] = winner, votes[winner] / total
    return KindPrediction(neighbours=len(records), values=values, shares=shares, clear_match=clear)

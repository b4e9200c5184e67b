"""Retrieval metrics at a cut-off k, for one ranking or many, and their random baseline.

Relevance is binary. A ranking is given as its relevance flags ``rel`` in rank
order (1 = relevant); ``R`` is the number of relevant items that could have
been retrieved (for leave-one-out: relevant products other than the query).
Results missing from a ranking shorter than k count as not relevant.

``precision@k``  relevant among the top k, divided by k.
``AP@k``         sum over relevant ranks j <= k of precision@j, divided by min(k, R); mAP@k is its mean.
``nDCG@k``       DCG = sum_j rel_j / log2(j + 1), divided by the DCG of min(k, R) hits first.
``hit@1``        1 when the first result is relevant, else 0.

AP@k and nDCG@k are 0 when R is 0. Every metric is a fraction in [0, 1].
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..validation import check_k

__all__ = [
    "average_precision_at_k",
    "batch_metrics",
    "hit_at_1",
    "ndcg_at_k",
    "precision_at_k",
    "random_baseline",
]


# --------------------------------------------------------------------------- one ranking


def precision_at_k(rel: ArrayLike, k: int) -> float:
    """Fraction of the first ``k`` results that are relevant.

    ``rel``: relevance flags in rank order, any length (only the first ``k``
    count; missing results count as not relevant). Raises ``ValueError`` when
    ``k`` < 1.
    """
    rel = _rel(rel, k)
    return float(rel.sum() / k)


def average_precision_at_k(rel: ArrayLike, k: int, n_relevant: int) -> float:
    """AP@k: sum of precision@j at each relevant rank j <= k, divided by min(k, n_relevant).

    ``n_relevant`` is R, the number of relevant items that exist. 0.0 when it is 0.
    """
    rel = _rel(rel, k)
    denom = min(k, int(n_relevant))
    if denom <= 0:
        return 0.0
    hits = np.cumsum(rel)
    ranks = np.arange(1, len(rel) + 1)
    return float((rel * hits / ranks).sum() / denom)


def ndcg_at_k(rel: ArrayLike, k: int, n_relevant: int) -> float:
    """nDCG@k with binary gains and discount 1 / log2(rank + 1); 0.0 when ``n_relevant`` is 0."""
    rel = _rel(rel, k)
    ideal = min(k, int(n_relevant))
    if ideal <= 0:
        return 0.0
    disc = _discounts(k)
    return float((rel * disc[: len(rel)]).sum() / disc[:ideal].sum())


def hit_at_1(rel: ArrayLike) -> float:
    """1.0 when the first result is relevant, else 0.0 (also for an empty ranking)."""
    rel = np.asarray(rel, dtype=float).ravel()
    return float(len(rel) > 0 and rel[0] > 0)


def _rel(rel: ArrayLike, k: int) -> np.ndarray:
    k = check_k(k)
    return np.asarray(rel, dtype=float).ravel()[:k]


def _discounts(k: int) -> np.ndarray:
    """(k,) DCG discounts 1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


# --------------------------------------------------------------------------- many rankings


def batch_metrics(rel: ArrayLike, n_relevant: ArrayLike, k: int) -> dict[str, np.ndarray]:
    """The metrics above for Q rankings at once.

    ``rel``: (Q, k) relevance flags (bool or 0/1; columns past k are ignored);
    ``n_relevant``: (Q,) R per ranking. Returns ``{"precision", "ap", "ndcg",
    "hit1"}``, each a (Q,) float array equal to the single-ranking function's value.
    """
    rel = np.asarray(rel, dtype=float)[:, :k]
    n_relevant = np.asarray(n_relevant)
    ideal = np.minimum(k, n_relevant)
    ranks = np.arange(1, rel.shape[1] + 1)
    disc = _discounts(k)
    ideal_dcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(ideal > 0, (rel * np.cumsum(rel, axis=1) / ranks).sum(1) / np.maximum(ideal, 1), 0.0)
        ndcg = np.where(ideal > 0, (rel * disc[: rel.shape[1]]).sum(1) / np.where(ideal > 0, ideal_dcg, 1.0), 0.0)
    return {
        "precision": rel.sum(1) / k,
        "ap": ap,
        "ndcg": ndcg,
        "hit1": rel[:, 0] if rel.shape[1] else np.zeros(len(rel)),
    }


def random_baseline(n_relevant: ArrayLike, n_candidates: int, k: int) -> dict[str, np.ndarray]:
    """Expected metrics of a uniformly random ranking of ``n_candidates`` items, ``n_relevant`` of them relevant.

    ``n_relevant``: (Q,) R per query; ``n_candidates``: M, the items ranked (for
    leave-one-out N - 1). Returns the same keys and shapes as :func:`batch_metrics`.

    Each of the first min(k, M) ranks is relevant with probability p = R / M, and
    two distinct ranks both are with probability R (R - 1) / (M (M - 1)); the
    expectations of precision, AP and DCG are linear in those. So the expected
    precision@k is p * min(k, M) / k and the expected hit@1 is p.
    """
    R = np.asarray(n_relevant, dtype=float)
    M = int(n_candidates)
    kk = min(k, M)
    p = R / M if M > 0 else np.zeros_like(R)
    ranks = np.arange(1, kk + 1, dtype=float)
    pair = R * (R - 1) / (M * (M - 1)) if M > 1 else np.zeros_like(R)
    # E[rel_j * hits_j / j] = (p + (j - 1) * pair) / j
    ap_sum = (p[:, None] + (ranks[None, :] - 1) * pair[:, None]) / ranks[None, :]
    ideal = np.minimum(k, R).astype(int)
    disc = _discounts(k)
    ideal_dcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(ideal > 0, ap_sum.sum(1) / np.maximum(ideal, 1), 0.0)
        ndcg = np.where(ideal > 0, p * disc[:kk].sum() / np.where(ideal > 0, ideal_dcg, 1.0), 0.0)
    return {"precision": p * kk / k, "ap": ap, "ndcg": ndcg, "hit1": p}

"""Assembling a build: catalog-ordered vectors and the skipped list, written as an index folder.

Rows whose image was embedded become index rows, in catalog order; every other
row becomes a manifest ``skipped`` entry:

* ``{"id", "image", "reason": "no image file"}`` for a product without a file,
* ``{"id", "image", "signature", "reason"}`` for a file that could not be
  embedded; the ``signature`` lets the next run skip it again until the file changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..index import write_index
from ..output import json_value
from .outcomes import NOT_EMBEDDED
from .plan import EmbeddingPlan


@dataclass
class Assembly:
    """The content of an index folder, before it is written."""

    vectors: np.ndarray
    """(n, D) float32, row i the vector of ``products`` row i."""
    products: pd.DataFrame
    """n rows: the products that have a vector, in catalog order."""
    skipped: list[dict[str, Any]]
    """Manifest ``skipped`` entries: products without an image first, then the failures."""


def assemble(plan: EmbeddingPlan, dim: int) -> Assembly:
    """Gather ``plan``'s rows, in catalog order, from its outcomes (which the run has completed)."""
    skipped = list(plan.missing)
    rows, vectors = [], []
    for i, key in enumerate(plan.keys):
        if plan.signatures[i] is None:
            continue
        vector = plan.outcomes.vectors.get(key)
        if vector is None:
            failure = plan.outcomes.failures.get(key, NOT_EMBEDDED)
            skipped.append({"id": json_value(plan.products["id"].iloc[i]), "image": str(plan.products["image"].iloc[i]),
                            "signature": plan.signatures[i], "reason": failure.reason})
            continue
        rows.append(i)
        vectors.append(vector)
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    return Assembly(matrix, plan.products.iloc[rows].reset_index(drop=True), skipped)


def write_assembly(
    out: Path,
    assembly: Assembly,
    settings: Mapping[str, Any],
    *,
    root: Path,
    where: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``assembly`` as the index folder ``out``; returns the manifest written.

    The manifest holds ``settings``, ``catalog`` (``root`` resolved, ``where``),
    ``skipped`` and, when updating an index (``previous``: its manifest), the
    ``created`` time of ``previous``.
    """
    manifest = {
        **settings,
        "catalog": {"root": str(Path(root).resolve()), "where": dict(where or {})},
        "skipped": assembly.skipped,
    }
    if previous is not None:
        manifest["created"] = previous.get("created")
    return write_index(out, assembly.vectors, assembly.products, manifest)

"""Writing an evaluation: ``evaluation.json`` and the per-articleType precision chart."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pandas as pd

from ..errors import FashionrecError
from ..output import atomic_write
from .leave_one_out import EvaluationResult
from .photo_queries import PhotoQueryResult
from .real_photos import PhotoFolderResult

__all__ = ["CHART_FILE", "EVALUATION_FILE", "write_evaluation"]

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
"""The summary (:class:`~fashionrec.evaluation.summary.EvaluationSummary`), indented JSON."""
CHART_FILE = "precision_by_articleType.png"
"""Bar chart of precision@k per query articleType, model beside random."""


def write_evaluation(
    result: EvaluationResult, out_dir: str | os.PathLike, *, top: int = 25, photo_queries: PhotoQueryResult | None = None,
    real_photos: PhotoFolderResult | None = None,
) -> dict[str, Path]:
    """Write ``evaluation.json`` and a per-articleType precision chart into ``out_dir`` (created if needed).

    The JSON is ``result.summary(photo_queries, real_photos).model_dump(mode="json")``; the
    chart shows the ``top`` articleTypes with the most queries. Both files are
    replaced atomically. Returns ``{"json": path, "chart": path}``.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FashionrecError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    json_path = out / EVALUATION_FILE
    payload = result.summary(photo_queries, real_photos).model_dump(mode="json")
    text = json.dumps(payload, indent=2, allow_nan=False)
    atomic_write(json_path, lambda f: f.write(text.encode()))
    chart_path = out / CHART_FILE
    png = _chart_png(result, top=top)
    atomic_write(chart_path, lambda f: f.write(png))
    log.info("wrote %s and %s", json_path, chart_path)
    return {"json": json_path, "chart": chart_path}


def _chart_png(result: EvaluationResult, *, top: int) -> bytes:
    """PNG bytes of horizontal bars: precision@k of the model and of random, per articleType (8 in wide, 100 dpi)."""
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.k
    classes = result.per_class.head(top)
    long = pd.concat(
        [
            pd.DataFrame(
                {"articleType": classes["articleType"], f"precision@{k}": classes[f"precision@{k}"], "ranking": "model"}
            ),
            pd.DataFrame(
                {
                    "articleType": classes["articleType"],
                    f"precision@{k}": classes[f"random_precision@{k}"],
                    "ranking": "random",
                }
            ),
        ],
        ignore_index=True,
    )
    labels = [f"{a} ({n})" for a, n in zip(classes["articleType"], classes["n_queries"])]
    long["articleType"] = long["articleType"].map(dict(zip(classes["articleType"], labels)))
    fig = Figure(figsize=(8, max(3.0, 0.32 * len(classes) + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sns.barplot(data=long, y="articleType", x=f"precision@{k}", hue="ranking", ax=ax, orient="h",
                palette={"model": "#3a6ea5", "random": "#bbbbbb"})
    ax.set_xlim(0, 1)
    ax.set_ylabel(f"articleType (queries) — top {len(classes)} by count")
    norm = ", L2-normalised" if result.normalize else ""
    ax.set_title(
        f"precision@{k} by articleType ({result.metric}{norm}; relevance {result.relevance})\n"
        f"overall {result.overall[f'precision@{k}']:.3f} vs random {result.baseline[f'precision@{k}']:.3f}, "
        f"{result.n_queries} queries",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

"""Views: the EDA report, pictures of recommendations and the demo report.

* :mod:`.summary` — :func:`summarize`: a catalog's products counted by attribute (``summary.json``).
* :mod:`.charts` — the EDA charts: bar charts, a heatmap, a contact sheet (PNG).
* :mod:`.eda` — :func:`write_report`: summary, charts and HTML page in one folder.
* :mod:`.pictures` — :func:`plot_recommendations` / :func:`recommendation_figure`: a query beside its
  recommendations (PNG).
* :mod:`.demo` — :func:`run_demo`: every stage of the pipeline into one HTML report.
* :mod:`.html` — :func:`~fashionrec.reports.html.render`: pages from the Jinja2 templates in ``templates/``.
"""

from .demo import DemoResult, run_demo
from .eda import EdaReport, write_report
from .pictures import plot_recommendations, recommendation_figure
from .summary import summarize

__all__ = ["DemoResult", "EdaReport", "plot_recommendations", "recommendation_figure", "run_demo", "summarize",
           "write_report"]

"""fashionrec — visual "more like this" recommendations for fashion catalogs.

The pipeline flows one way: catalog → embeddings → index → recommendations → views.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Recommender", "load_catalog", "__version__"]


def __getattr__(name: str):
    # Lazy imports keep `import fashionrec` (and the CLI's start-up) light:
    # torch and friends load only when a stage that needs them is used.
    if name == "Recommender":
        from .recommend import Recommender

        return Recommender
    if name == "load_catalog":
        from .catalog import load_catalog

        return load_catalog
    raise AttributeError(f"module 'fashionrec' has no attribute {name!r}")

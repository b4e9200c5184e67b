"""Data sets fashionrec generates itself: the offline sample catalog.

* :mod:`.drawing` — :func:`draw_product` draws one product picture (the
  :data:`KINDS` of product, in the :data:`COLOURS`).
* :mod:`.sample` — :func:`make_sample_catalog` writes a drawn catalog in the
  Kaggle layout; :func:`sample_catalog_path` returns the cached default one.
"""

from .drawing import COLOURS, IMAGE_SIZE, KINDS, Kind, draw_product
from .sample import DEFAULT_N, make_sample_catalog, sample_catalog_path

__all__ = ["COLOURS", "DEFAULT_N", "IMAGE_SIZE", "KINDS", "Kind", "draw_product", "make_sample_catalog",
           "sample_catalog_path"]

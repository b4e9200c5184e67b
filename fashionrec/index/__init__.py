"""Stage 3 — the index folder: embeddings stored once, queried many times.

:mod:`.folder` reads and writes the folder (vectors, products, engine files);
:mod:`.manifest` validates its ``manifest.json``.
"""

from .folder import ENGINES_DIR, EMBEDDINGS_FILE, PRODUCTS_FILE, IndexFolder, vector_ids, write_index
from .manifest import (
    COMPATIBILITY_KEYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    REQUIRED_KEYS,
    check_compatible,
    read_manifest,
    utc_now,
)

__all__ = [
    "COMPATIBILITY_KEYS", "EMBEDDINGS_FILE", "ENGINES_DIR", "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_FILE",
    "MANIFEST_KEYS", "PRODUCTS_FILE", "REQUIRED_KEYS", "IndexFolder", "check_compatible", "read_manifest", "utc_now",
    "vector_ids", "write_index",
]

"""Stage 3 — the index folder: embeddings stored once, queried many times.

:mod:`.folder` reads and writes the folder (vectors, products, engine files), one
generation at a time (``generations/<generation>/``, switched through the ``current`` link);
:mod:`.manifest` validates its ``manifest.json``.
"""

from .folder import (
    ENGINES_DIR,
    EMBEDDINGS_FILE,
    PRODUCTS_FILE,
    IndexFolder,
    remove_leftovers,
    update_manifest,
    vector_ids,
    write_index,
)
from .lock import exclusive_build_lock
from .manifest import (
    COMPATIBILITY_KEYS,
    CURRENT_LINK,
    GENERATIONS_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    MANIFEST_KEYS,
    REQUIRED_KEYS,
    check_compatible,
    generation_dir,
    read_manifest,
    utc_now,
)

__all__ = [
    "COMPATIBILITY_KEYS", "CURRENT_LINK", "EMBEDDINGS_FILE", "ENGINES_DIR", "FORMAT_NAME", "FORMAT_VERSION",
    "GENERATIONS_DIR", "MANIFEST_FILE", "MANIFEST_KEYS", "PRODUCTS_FILE", "REQUIRED_KEYS", "IndexFolder",
    "check_compatible", "exclusive_build_lock", "generation_dir", "read_manifest", "remove_leftovers",
    "update_manifest", "utc_now", "vector_ids",
    "write_index",
]

"""The ``milvus`` search engine: vectors in a Milvus collection (a standalone server or a cluster).

:class:`MilvusEngine` (:mod:`.engine`) answers queries through a Milvus server,
with the same exact distances, ties and exclusions as every other engine;
:func:`push_index` (:mod:`.push`, the ``fashionrec milvus push`` command) puts
an index folder's vectors into a collection and records it in the folder;
:mod:`.expressions` turns filters into Milvus boolean expressions and
:mod:`.connection` reaches the server (URI, credentials, time limits). pymilvus
is imported only when a server is first contacted.
"""

from .connection import DEFAULT_URI, URI_ENV, MilvusError, server_address
from .engine import INDEX_TYPES, MilvusEngine, default_collection
from .expressions import FilterTranslator, quote
from .push import PushSummary, push_index

__all__ = [
    "DEFAULT_URI", "INDEX_TYPES", "URI_ENV", "FilterTranslator", "MilvusEngine", "MilvusError", "PushSummary",
    "default_collection", "push_index", "quote", "server_address",
]

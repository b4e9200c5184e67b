"""The ``fashionrec`` command line: a thin layer over the library.

:mod:`.app` holds the Typer application and its error handling, :mod:`.commands`
the commands (each parses arguments, calls one library function and renders its
result), :mod:`.render` the Rich tables. Errors become one line on stderr and a
non-zero exit code.
"""

from . import commands  # noqa: F401  (registers the commands on ``app``)
from .app import app, main
from .milvus import milvus_app

app.add_typer(milvus_app, name="milvus")  # `fashionrec milvus push`; here, as app.py cannot import it (a cycle)

__all__ = ["app", "main"]

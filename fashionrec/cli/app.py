"""The Typer application, its consoles and the error handling every command shares.

A command registered with :func:`cli_command` turns a
:class:`~fashionrec.errors.FashionrecError` into one line on stderr and its exit
code, Ctrl-C into a "resume" hint and exit code 130, and any other exception
(a bug) into one line too, unless ``FASHIONREC_DEBUG`` is set.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from ..errors import FashionrecError

app = typer.Typer(
    name="fashionrec",
    help="Visual 'more like this' recommendations for fashion product catalogs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

WhereOption = Annotated[
    Optional[list[str]],
    typer.Option("--where", "-w", help="Attribute filter KEY=VALUE; repeat to combine (same key: any of the values)."),
]


INTERRUPTED = "finished work is saved; run the same command again to resume"
"""What an interrupted command says after "interrupted: "."""


def one_line_errors(func, *, interrupted: str = INTERRUPTED):
    """``func`` reporting errors as one line and an exit code, never a traceback (``interrupted``: what Ctrl-C says)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FashionrecError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print(f"[yellow]interrupted[/]: {interrupted}")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: still one line, with a way to see the traceback
            if os.environ.get("FASHIONREC_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                "(set FASHIONREC_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def cli_command(func):
    """Register ``func`` as a command that reports errors as one line, never a traceback."""
    return app.command()(one_line_errors(func))


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    # Library warnings (Pillow's DecompressionBombWarning, PNG chunk warnings, Matplotlib's font
    # messages) go through logging and show only with -v, never as raw warning text on stderr.
    logging.captureWarnings(True)
    quiet = logging.INFO if verbose else logging.ERROR
    for name in ("py.warnings", "PIL", "matplotlib", "urllib3"):
        logging.getLogger(name).setLevel(quiet)
    # pymilvus logs each failed request with its traceback; ours is one line (--engine milvus, milvus push)
    logging.getLogger("pymilvus").setLevel(logging.INFO if verbose else logging.CRITICAL)


OPTIONAL_VALUE_OPTIONS: dict[str, str] = {"--ray": "local"}
"""Options whose value may be left out (``index --ray`` alone), and the value they then take."""


def with_optional_values(args: list[str]) -> list[str]:
    """``args`` with each option of :data:`OPTIONAL_VALUE_OPTIONS` given without a value completed with its default.

    An option takes no value when it comes last or is followed by another
    option (``--ray --engine ivf``); Click has no optional option values, so
    the command line is completed before it parses it.
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in OPTIONAL_VALUE_OPTIONS and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUE_OPTIONS[arg])
    return out


def main() -> None:
    """Entry point of the ``fashionrec`` command."""
    from . import commands  # noqa: F401  (registers the commands on ``app``)

    app(args=with_optional_values(sys.argv[1:]), prog_name="fashionrec")

"""The ``identikit`` command line.

Every user error is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import torch
from tqdm import tqdm

from identikit.base.errors import IdentikitError
from identikit.base.text import terminal_safe
from identikit.cli import models, reconstructing, reporting, searching
from identikit.cli.options import Parser, escape_warnings

DESCRIPTION = "What does a trained image classifier believe a class looks like?"
Handler = Callable[[argparse.Namespace], int]


def version_line() -> str:
    """``identikit 0.1.0 (torch 2.13.0, Python 3.11.9)``: the installed package's version (a
    bug report needs it, and the versions it runs on); a source tree run without installing
    (``PYTHONPATH=src``) has no installed version to show, and says so."""
    try:
        version = importlib.metadata.version("identikit")
    except importlib.metadata.PackageNotFoundError:
        version = "(source tree, not installed)"
    return f"identikit {version} (torch {torch.__version__}, Python {platform.python_version()})"


class _Version(argparse.Action):
    """``--version``: print :func:`version_line` and exit 0, like argparse's own version
    action, but unwrapped and computed only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="identikit", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument(
        "--version",
        action=_Version,
        help="show identikit's version, and torch's and Python's, and exit",
    )
    # --debug is accepted after the command too; SUPPRESS keeps a top-level --debug intact.
    common = Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    for module in (models, searching, reconstructing, reporting):
        module.register(commands, common)
    return parser


def _attach_ranges(arguments: list[str]) -> list[str]:
    """``--input-range -1,1`` -> ``--input-range=-1,1``: argparse takes "-1,1" for an option."""
    out: list[str] = []
    for argument in arguments:
        if out and out[-1] == "--input-range" and argument.startswith("-"):
            out[-1] = f"--input-range={argument}"
        else:
            out.append(argument)
    return out


def _clear_progress_bars() -> None:
    """Close every progress bar still showing, so that the message that follows starts a line
    of its own instead of landing on the bar's. Bars close themselves in ``finally`` blocks;
    this is for any that an error left open."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    escape_warnings()
    parser = build_parser()
    arguments = _attach_ranges(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(arguments)
    args.argv = arguments
    try:
        handler: Handler = args.handler
        return handler(args)
    except IdentikitError as exc:
        if args.debug:
            raise
        _clear_progress_bars()
        print(f"identikit: error: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _clear_progress_bars()
        print("identikit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:  # a bug of identikit's, not the user's: still no traceback
        if args.debug:
            raise
        _clear_progress_bars()
        print(
            f"identikit: internal error: {type(exc).__name__}: {terminal_safe(exc)} "
            "(please report it; --debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


def entry_point() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())


__all__ = ["build_parser", "main"]

"""Commands that show results: report, demo."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from identikit import api
from identikit.cli.demo import run_demo
from identikit.cli.options import add_device, output_path
from identikit.reports.page import check_pngs_folder, write_pngs


def cmd_report(args: argparse.Namespace) -> int:
    if args.pngs is not None:
        check_pngs_folder(args.pngs)  # before the page: a bad --pngs costs no work
    page = api.report(
        args.folder,
        animate=not args.no_animation,
        models=args.model,
        trust_code=args.trust_code,
        log=_say,
        progress=True,
    )
    path = page.path
    print(f"report: {path}")
    if args.pngs is not None:
        written = write_pngs(args.folder, args.pngs)
        print(f"{len(written)} identikit images in {args.pngs}")
    if args.open:
        open_page(path)
    return 0


def _say(line: str) -> None:
    """What takes time, on stderr: stdout carries only the results' paths."""
    print(line, file=sys.stderr, flush=True)


def open_page(path: Path) -> None:
    """Open the page in a browser; where none can be opened, say where the page is."""
    if not webbrowser.open(path.resolve().as_uri()):
        print(f"could not open a browser; the page is {path.resolve()}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(Path(args.out), device=args.device, root=args.root)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's commands to the parser."""
    report = commands.add_parser(
        "report", parents=[common], help="one self-contained HTML page of every result in a folder"
    )
    report.add_argument("folder", type=Path, help="folder of results (searched recursively)")
    report.add_argument("--open", action="store_true", help="open the page in a browser")
    report.add_argument(
        "--model",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="model file whose sweeps get animations, replayed from their seeds (repeatable; "
        "matched to sweeps by content hash). A results folder never chooses what model runs",
    )
    report.add_argument(
        "--trust-code",
        action="store_true",
        help="allow a TorchScript --model (a program that runs with your permissions)",
    )
    report.add_argument(
        "--pngs",
        type=output_path,
        default=None,
        metavar="OUT",
        help="also write every identikit as OUT/<sweep folder>/<digit>-<run>.png: grayscale "
        "for one-channel images, RGB for three, each image pixel an N x N square, N the most "
        "that keeps the longer side within 224 pixels (8 for 28 x 28 images, 7 for 32 x 32, "
        "28 for 8 x 8, 1 for larger ones)",
    )
    report.add_argument(
        "--no-animation",
        action="store_true",
        help="skip replaying runs for the animations (faster)",
    )
    report.set_defaults(handler=cmd_report)

    demo = commands.add_parser(
        "demo", parents=[common], help="the whole pipeline on MNIST with default settings"
    )
    demo.add_argument(
        "--out", type=output_path, default="runs/demo", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--root", type=Path, default=None, help="MNIST folder (default: as 'data')")
    add_device(demo)
    demo.set_defaults(handler=cmd_demo)

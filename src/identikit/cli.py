"""The ``identikit`` command line: ``data | train | evaluate | demo``.

Every user error is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from identikit.classifier import Classifier

from identikit.data import DATASETS, SPLITS, default_root, ensure_files, load_dataset
from identikit.device import DEVICE_CHOICES
from identikit.errors import IdentikitError
from identikit.models import ARCHITECTURES
from identikit.preprocessing import INPUT_RANGES, OUTPUT_KINDS
from identikit.search import STRATEGIES
from identikit.search.base import START_IMAGES

DESCRIPTION = "What does a trained image classifier believe a digit looks like?"
Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line, like every other identikit error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="mnist",
        help=f"{', '.join(sorted(DATASETS))}, or idx:DIR for any folder of IDX "
        "files under MNIST's names (default: %(default)s)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="folder with the IDX files (default: $IDENTIKIT_DATA, else ~/.cache/identikit)",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """How to read a model file (checkpoint, TorchScript or ONNX) and its conventions."""
    group = parser.add_argument_group("model conventions (for TorchScript and ONNX models)")
    group.add_argument(
        "--input-range",
        default="0,1",
        choices=sorted(INPUT_RANGES),
        help="pixel range the model expects (default: %(default)s)",
    )
    group.add_argument(
        "--mean", type=float, default=0.0, help="subtracted after scaling (default: %(default)s)"
    )
    group.add_argument(
        "--std",
        type=float,
        default=1.0,
        help="divided by after subtracting the mean (default: %(default)s)",
    )
    group.add_argument(
        "--outputs",
        default=None,
        choices=OUTPUT_KINDS,
        help="what the model returns (default: detected)",
    )
    group.add_argument(
        "--classes",
        type=int,
        default=None,
        help="number of classes the model must return (default: any)",
    )
    group.add_argument(
        "--class-names",
        default=None,
        help="comma-separated class names for tables (default: the numbers)",
    )
    group.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="images per forward pass (default: 128 on CPU, 8192 on GPU)",
    )


def _classifier(args: argparse.Namespace) -> Classifier:
    from identikit.classifier import load_classifier
    from identikit.preprocessing import Preprocessing

    names = args.class_names.split(",") if args.class_names else None
    classifier = load_classifier(
        args.model,
        device=args.device,
        chunk_size=args.chunk_size,
        classes=args.classes,
        class_names=names,
        preprocessing=Preprocessing(
            input_range=args.input_range, mean=args.mean, std=args.std, outputs=args.outputs
        ),
    )
    if classifier.detected_outputs and classifier.outputs != "logits":
        print(
            f"{classifier.name}: outputs detected as {classifier.outputs} "
            "(set --outputs to override)",
            file=sys.stderr,
        )
    return classifier


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="where to run the model; auto takes a GPU when there is one (default: %(default)s)",
    )


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, separators=(",", ":")))


def cmd_data(args: argparse.Namespace) -> int:
    paths = ensure_files(args.dataset, args.root)
    for split in SPLITS:
        images, labels = load_dataset(args.dataset, split, args.root)
        print(f"{args.dataset} {split}: {len(images)} images, {len(set(labels.tolist()))} classes")
    folder = sorted({str(p.parent) for p in paths.values()})
    print(f"files in {', '.join(folder)} (checksums verified)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from identikit.training import train

    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    result = train(
        args.model,
        dataset=args.dataset,
        root=args.root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        out=args.out,
        progress=not args.no_progress,
        log=log,
    )
    summary = {
        "model": result.architecture,
        "test_accuracy": result.test_accuracy,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 2),
        "seed": result.seed,
        "batch_size": result.config.batch_size,
        "lr": result.config.lr,
        "out": str(args.out),
    }
    if args.json:
        _print_json(summary)
    else:
        print(
            f"{result.architecture}: test accuracy {result.test_accuracy:.2%} after "
            f"{result.epochs} epochs in {result.seconds:.0f} s; saved {args.out}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from identikit.data import get_spec
    from identikit.training import evaluate_classifier

    classifier = _classifier(args)
    spec = get_spec(args.dataset)
    images, labels = load_dataset(args.dataset, "test", args.root)
    if classifier.num_classes != len(spec.class_names):
        raise IdentikitError(
            f"{args.model} has {classifier.num_classes} classes, {args.dataset} "
            f"has {len(spec.class_names)}"
        )
    result = evaluate_classifier(classifier, images, labels)
    if args.json:
        _print_json(
            {
                "model": classifier.name,
                "dataset": args.dataset,
                "accuracy": result.accuracy,
                "per_class": result.per_class,
                "confusion": result.confusion,
            }
        )
        return 0
    names = spec.class_names
    print(f"{args.model} on {args.dataset} test: accuracy {result.accuracy:.2%}")
    print("class  accuracy   " + " ".join(f"{n[:5]:>5}" for n in names))
    for name, accuracy, row in zip(names, result.per_class, result.confusion, strict=True):
        print(f"{name[:5]:>5}  {accuracy:8.2%}   " + " ".join(f"{v:5d}" for v in row))
    return 0


def _strategy_settings(args: argparse.Namespace) -> dict[str, Any]:
    from identikit.search.registry import parse_option

    names = ("candidates", "mask_density", "mask_amplitude")
    settings = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    settings.update(parse_option(args.strategy, option) for option in args.option)
    if args.prior:
        if "priors" not in getattr(STRATEGIES[args.strategy], "__dataclass_fields__", {}):
            raise IdentikitError(f"strategy {args.strategy!r} takes no --prior")
        settings["priors"] = args.prior
    return settings


def cmd_search(args: argparse.Namespace) -> int:
    from identikit.experiment import SweepConfig, format_summary, parse_digits
    from identikit.interrupt import PauseOnInterrupt
    from identikit.sweep import sweep_to_folder

    config = SweepConfig(
        digits=parse_digits(args.digits),
        runs=args.runs,
        strategy=args.strategy,
        strategy_settings=_strategy_settings(args),
        seed=args.seed,
        target=args.target,
        patience=args.patience,
        max_queries=args.max_queries,
        start=args.start,
    )
    classifier = _classifier(args)
    with PauseOnInterrupt() as pause:
        outcome = sweep_to_folder(
            classifier,
            config,
            args.out,
            progress=not args.no_progress,
            model_path=str(args.model),
            should_stop=pause,
            save_every=args.save_every,
        )
    if outcome.results is None:
        command = shlex.join(["identikit", *args.argv])
        print(
            f"identikit: paused; the sweep is saved in {args.out}. Resume with:\n  {command}",
            file=sys.stderr,
        )
        return 130
    results = outcome.results
    if outcome.already_done:
        print(f"{args.out} holds this sweep, finished: nothing to do", file=sys.stderr)
    elif outcome.resumed:
        print(f"resumed and finished the sweep saved in {args.out}", file=sys.stderr)
    if args.json:
        _print_json(
            {
                "out": str(args.out),
                "summary": results["summary"],
                "total_queries": results["total_queries"],
                "seconds": results["seconds"],
            }
        )
    else:
        print(format_summary(results))
        print(f"results in {args.out}/: results.json, identikits.npz, grid.png")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from identikit.atomic import atomic_write_bytes, atomic_write_text
    from identikit.compare import THRESHOLDS, curves, run_comparison, summarise_strategy
    from identikit.experiment import parse_digits
    from identikit.interrupt import PauseOnInterrupt
    from identikit.report.figures import convergence_curves

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if not strategies or unknown:
        raise IdentikitError(
            f"--strategies: unknown {unknown or 'none given'}; known: "
            f"{', '.join(sorted(STRATEGIES))}"
        )
    classifier = _classifier(args)
    with PauseOnInterrupt() as pause:
        by_strategy = run_comparison(
            classifier,
            strategies,
            args.out,
            digits=parse_digits(args.digits),
            runs=args.runs,
            max_queries=args.max_queries,
            seed=args.seed,
            progress=not args.no_progress,
            model_path=str(args.model),
            should_stop=pause,
        )
    if by_strategy is None:
        command = shlex.join(["identikit", *args.argv])
        print(f"identikit: paused; saved in {args.out}. Resume with:\n  {command}", file=sys.stderr)
        return 130
    summary = {name: summarise_strategy(r) for name, r in by_strategy.items()}
    atomic_write_text(args.out / "compare.json", json.dumps(summary, indent=1))
    atomic_write_bytes(
        args.out / "curves.png",
        convergence_curves(
            curves(by_strategy),
            threshold=0.99,
            max_queries=args.max_queries,
            title=f"{classifier.name}: {args.runs} runs per digit, budget {args.max_queries:,}",
        ),
    )
    if args.json:
        _print_json(summary)
        return 0
    header = "".join(f"{'at ' + str(t):>18s}" for t in THRESHOLDS)
    print(f"{'strategy':14s}{header}   seconds   (success rate, median queries)")
    for name, row in summary.items():
        cells = "".join(
            f"{row['success'][str(t)]:>8.0%} {_fmt(row['median_queries'][str(t)]):>9s}"
            for t in THRESHOLDS
        )
        print(f"{name:14s}{cells}   {row['seconds']:7.1f}")
    print(f"per-digit figures in {args.out / 'compare.json'}; curves in {args.out / 'curves.png'}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def cmd_ceiling(args: argparse.Namespace) -> int:
    from identikit.ceiling import model_ceiling
    from identikit.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(args.model)
    ceiling = model_ceiling(model)
    rows = {
        str(c): {
            "shortfall": float(ceiling.shortfall[c]),
            "gap": float(ceiling.gap[c]),
            "reaches_0.99": bool(ceiling.shortfall[c] <= 0.01),
            "reaches_0.9999": bool(ceiling.shortfall[c] <= 1e-4),
        }
        for c in range(len(ceiling.shortfall))
    }
    if args.out is not None:
        from identikit.atomic import atomic_write_bytes
        from identikit.report.figures import identikit_grid

        images = ceiling.images.view(-1, 28, 28).numpy()
        atomic_write_bytes(
            args.out / "ceiling.png",
            identikit_grid(
                images,
                list(range(len(images))),
                ceiling.probability.tolist(),
                title="exact optimum of the linear model",
            ),
        )
    if args.json:
        _print_json(rows)
        return 0
    print("class   best 1 - p    certified within (log-prob)   reaches 0.99 / 0.9999")
    for name, row in rows.items():
        print(
            f"{name:>5}   {row['shortfall']:10.2e}    {row['gap']:10.1e}"
            f"                   {'yes' if row['reaches_0.99'] else 'no':>3} / "
            f"{'yes' if row['reaches_0.9999'] else 'no'}"
        )
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from identikit.atomic import atomic_write_text
    from identikit.judge import judge_sweep

    verdict = judge_sweep(
        args.sweep,
        judges=[j.strip() for j in args.judges.split(",")],
        dataset=args.dataset,
        root=args.root,
        device=args.device,
        cache=args.cache,
    )
    atomic_write_text(args.sweep / "judge.json", json.dumps(verdict, indent=1))
    if args.json:
        _print_json({k: verdict[k] for k in ("judges", "nearest_neighbour", "identikits")})
        return 0
    print(f"{verdict['identikits']} identikits of {args.sweep} ({verdict['strategy']})")
    for name, share in verdict["judges"].items():
        print(f"  {name:12s} calls {share:6.1%} of them their digit")
    print(
        f"  nearest real training digit has their class: {verdict['nearest_neighbour']:.1%} "
        f"(median distance {verdict['median_distance_own_class']:.2f} to their class, "
        f"{verdict['median_distance_other_classes']:.2f} to others)"
    )
    print(f"transfer matrices in {args.sweep / 'judge.json'}")
    return 0


def cmd_certainty(args: argparse.Namespace) -> int:
    from identikit.certainty import (
        certainty_report,
        format_certainty,
        max_probabilities,
        write_certainty,
    )

    classifier = _classifier(args)
    test_images, _ = load_dataset(args.dataset, "test", args.root)
    maxima = max_probabilities(classifier, test_images, samples=args.samples, seed=args.seed)
    report = certainty_report(maxima)
    if args.out is not None:
        write_certainty(classifier, maxima, args.out)
    if args.json:
        _print_json(report)
        return 0
    print(format_certainty(classifier.name, report))
    if args.out is not None:
        print(f"histograms in {args.out / 'certainty.png'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from identikit.export import export_model
    from identikit.models.checkpoint import load_checkpoint
    from identikit.preprocessing import Preprocessing

    model, _ = load_checkpoint(args.model)
    preprocessing = Preprocessing(
        input_range=args.input_range, mean=args.mean, std=args.std, outputs=args.outputs or "logits"
    )
    export_model(
        model,
        args.out,
        fmt=args.format,
        preprocessing=preprocessing,
        flatten=args.flatten,
        fixed_batch=args.fixed_batch,
    )
    flags = (
        f"--input-range {args.input_range} --mean {args.mean} --std {args.std} "
        f"--outputs {preprocessing.outputs}"
    )
    print(f"wrote {args.out} ({args.format}); use it with: {flags}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from identikit.report.page import build_report

    path = build_report(args.folder, animate=not args.no_animation)
    print(f"report: {path}")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from identikit.demo import run_demo

    return run_demo(Path(args.out), device=args.device, root=args.root)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="identikit", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # --debug is accepted after the command too; SUPPRESS keeps a top-level --debug intact.
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = commands.add_parser("data", parents=[common], help="fetch and verify a dataset")
    _add_data_options(data)
    data.set_defaults(handler=cmd_data)

    train = commands.add_parser(
        "train", parents=[common], help="train a model and save a checkpoint"
    )
    train.add_argument(
        "--model", required=True, choices=sorted(ARCHITECTURES), help="architecture to train"
    )
    train.add_argument("--out", required=True, type=Path, help="checkpoint file to write")
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default: the architecture's own, softmax 5, cnn 3)",
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="batch size (default: the architecture's own, softmax 100, cnn 128)",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate of the one-cycle schedule (default: the "
        "architecture's own, softmax 5e-3, cnn 3e-3)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument(
        "--json", action="store_true", help="print one JSON summary as the last line of stdout"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_data_options(train)
    _add_device(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="accuracy, per-class accuracy, confusion"
    )
    evaluate.add_argument("--model", required=True, type=Path, help="checkpoint file")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_data_options(evaluate)
    _add_device(evaluate)
    _add_model_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    search = commands.add_parser(
        "search", parents=[common], help="draw identikits: search every digit, several runs each"
    )
    search.add_argument("--model", required=True, type=Path, help="checkpoint file")
    search.add_argument("--out", required=True, type=Path, help="output folder")
    search.add_argument("--digits", default="0-9", help="e.g. 0-9, 3,7 (default: %(default)s)")
    search.add_argument(
        "--runs", type=int, default=10, help="runs per digit (default: %(default)s)"
    )
    search.add_argument(
        "--strategy",
        default="random-masks",
        choices=sorted(STRATEGIES),
        help="search strategy (default: %(default)s)",
    )
    search.add_argument("--seed", type=int, default=0, help="sweep seed (default: %(default)s)")
    search.add_argument(
        "--target",
        type=float,
        default=0.99,
        help="confidence at which a run has converged (default: %(default)s)",
    )
    search.add_argument(
        "--patience",
        type=int,
        default=50,
        help="iterations without gain before a run is stuck (default: %(default)s)",
    )
    search.add_argument(
        "--max-queries",
        type=int,
        default=100_000,
        help="model queries allowed per run (default: %(default)s)",
    )
    search.add_argument(
        "--start", default="blank", choices=START_IMAGES, help="start image (default: %(default)s)"
    )
    search.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="random-masks: masks per iteration (default: 500)",
    )
    search.add_argument(
        "--mask-density",
        type=float,
        default=None,
        help="random-masks: probability a pixel is perturbed (default: 0.05)",
    )
    search.add_argument(
        "--mask-amplitude",
        type=float,
        default=None,
        help="random-masks: offsets uniform in [-A, A] (default: 1.0)",
    )
    search.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any setting of the strategy, e.g. side=10 for square (repeatable)",
    )
    search.add_argument(
        "--prior",
        default="",
        help="image priors for strategies that take them, e.g. tv,blur,jitter",
    )
    search.add_argument(
        "--save-every",
        type=float,
        default=5.0,
        help="seconds between saves of the resumable state (default: %(default)s)",
    )
    search.add_argument("--json", action="store_true", help="print a JSON summary last")
    search.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_device(search)
    _add_model_options(search)
    search.set_defaults(handler=cmd_search)

    compare = commands.add_parser(
        "compare", parents=[common], help="strategies on every digit under one query budget"
    )
    compare.add_argument("--model", required=True, type=Path, help="checkpoint file")
    compare.add_argument("--out", required=True, type=Path, help="output folder")
    compare.add_argument(
        "--strategies",
        default="random-masks,evolution,square,gradient",
        help="comma-separated (default: %(default)s)",
    )
    compare.add_argument("--digits", default="0-9", help="(default: %(default)s)")
    compare.add_argument(
        "--runs", type=int, default=5, help="runs per digit (default: %(default)s)"
    )
    compare.add_argument(
        "--max-queries",
        type=int,
        default=10_000,
        help="query budget of every run (default: %(default)s)",
    )
    compare.add_argument("--seed", type=int, default=0, help="sweep seed (default: %(default)s)")
    compare.add_argument("--json", action="store_true", help="print a JSON summary last")
    compare.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    _add_device(compare)
    _add_model_options(compare)
    compare.set_defaults(handler=cmd_compare)

    ceiling = commands.add_parser(
        "ceiling", parents=[common], help="exact best confidence of a linear (softmax) model"
    )
    ceiling.add_argument("--model", required=True, type=Path, help="checkpoint of a softmax model")
    ceiling.add_argument("--out", type=Path, default=None, help="folder for ceiling.png")
    ceiling.add_argument("--json", action="store_true", help="print the result as JSON")
    ceiling.set_defaults(handler=cmd_ceiling)

    judge = commands.add_parser(
        "judge", parents=[common], help="do independent models and real digits agree?"
    )
    judge.add_argument("sweep", type=Path, help="folder of a finished sweep")
    judge.add_argument(
        "--judges",
        default="cnn-seed1,mlp,softmax",
        help="independently trained models, trained on first use and cached (default: %(default)s)",
    )
    judge.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder of trained judges (default: <data root>/judges)",
    )
    judge.add_argument("--json", action="store_true", help="print a JSON summary last")
    _add_data_options(judge)
    _add_device(judge)
    judge.set_defaults(handler=cmd_judge)

    certainty = commands.add_parser(
        "certainty", parents=[common], help="largest softmax output: real digits vs random images"
    )
    certainty.add_argument("--model", required=True, type=Path, help="checkpoint file")
    certainty.add_argument(
        "--out", type=Path, default=None, help="folder for certainty.json and certainty.png"
    )
    certainty.add_argument(
        "--samples", type=int, default=10_000, help="images per source (default: %(default)s)"
    )
    certainty.add_argument("--seed", type=int, default=0, help="seed of the random images")
    certainty.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_data_options(certainty)
    _add_device(certainty)
    _add_model_options(certainty)
    certainty.set_defaults(handler=cmd_certainty)

    export = commands.add_parser(
        "export", parents=[common], help="export a checkpoint to ONNX or TorchScript"
    )
    export.add_argument("--model", required=True, type=Path, help="identikit checkpoint")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    export.add_argument("--out", required=True, type=Path, help="file to write")
    export.add_argument(
        "--input-range",
        default="0,1",
        choices=sorted(INPUT_RANGES),
        help="pixel range the exported model expects (default: %(default)s)",
    )
    export.add_argument("--mean", type=float, default=0.0, help="(default: %(default)s)")
    export.add_argument("--std", type=float, default=1.0, help="(default: %(default)s)")
    export.add_argument(
        "--outputs",
        default=None,
        choices=OUTPUT_KINDS,
        help="what the exported model returns (default: logits)",
    )
    export.add_argument("--flatten", action="store_true", help="take inputs of shape (N, 784)")
    export.add_argument(
        "--fixed-batch",
        action="store_true",
        help="fix the batch size to 1 (ONNX), as some exporters do",
    )
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser(
        "report", parents=[common], help="one self-contained HTML page of every result in a folder"
    )
    report.add_argument("folder", type=Path, help="folder of results (searched recursively)")
    report.add_argument("--open", action="store_true", help="open the page in a browser")
    report.add_argument(
        "--no-animation",
        action="store_true",
        help="skip replaying runs for the animations (faster)",
    )
    report.set_defaults(handler=cmd_report)

    demo = commands.add_parser(
        "demo", parents=[common], help="the whole pipeline on MNIST with default settings"
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--root", type=Path, default=None, help="MNIST folder (default: as 'data')")
    _add_device(demo)
    demo.set_defaults(handler=cmd_demo)
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


def main(argv: Sequence[str] | None = None) -> int:
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
        print(f"identikit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
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
        print(
            f"identikit: internal error: {type(exc).__name__}: {exc} (please report it; "
            "--debug shows the traceback)",
            file=sys.stderr,
        )
        return 1


def entry_point() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())


__all__ = ["build_parser", "default_root", "main"]

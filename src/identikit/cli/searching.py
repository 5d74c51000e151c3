"""Commands that search and judge: search, compare, ceiling, judge, certainty."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from identikit.classifier import Classifier
from identikit.cli.options import (
    add_data_options,
    add_device,
    add_model_options,
    add_sweep_options,
    make_classifier,
    open_fraction,
    output_path,
    positive_float,
    positive_int,
    print_json,
)
from identikit.data import load_dataset
from identikit.errors import IdentikitError
from identikit.folder_lock import locked_folder
from identikit.interrupt import PauseOnInterrupt
from identikit.limits import SAMPLES
from identikit.search import STRATEGIES
from identikit.search.base import START_IMAGES
from identikit.search.registry import FLAG_SETTINGS, parse_option, setting_types


def paused(args: argparse.Namespace, pause: PauseOnInterrupt) -> int:
    """After Ctrl-C or SIGTERM: say where the work is saved and the command that resumes it;
    exit 130 (Ctrl-C) or 143 (SIGTERM), as the shell would."""
    command = shlex.join(["identikit", *args.argv])
    print(f"identikit: paused; saved in {args.out}. Resume with:\n  {command}", file=sys.stderr)
    return pause.exit_code


def _strategy_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The strategy's settings from its own flags and every ``--option NAME=VALUE``."""
    settings = {n: getattr(args, n) for n in FLAG_SETTINGS if getattr(args, n) is not None}
    settings.update(parse_option(args.strategy, option) for option in args.option)
    if args.prior:
        if "priors" not in setting_types(STRATEGIES[args.strategy]):
            raise IdentikitError(f"strategy {args.strategy!r} takes no --prior")
        settings["priors"] = args.prior
    return settings


def cmd_search(args: argparse.Namespace) -> int:
    from identikit.experiment import SweepConfig, format_summary, parse_digits
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
    classifier = make_classifier(args)
    with PauseOnInterrupt() as pause:
        outcome = sweep_to_folder(
            classifier,
            config,
            args.out,
            progress=not args.no_progress,
            model_path=str(args.model),
            should_stop=pause,
            save_every=args.save_every,
            allow_engine_change=args.allow_engine_change,
        )
    if outcome.results is None:
        return paused(args, pause)
    results = outcome.results
    if outcome.rebuilt:
        print(
            f"{args.out}: rebuilt {', '.join(outcome.rebuilt)} of the finished sweep",
            file=sys.stderr,
        )
    if outcome.already_done:
        print(f"{args.out} holds this sweep, finished: nothing to do", file=sys.stderr)
    elif outcome.resumed:
        print(f"resumed and finished the sweep saved in {args.out}", file=sys.stderr)
    if args.json:
        print_json(
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
    from identikit.report.figures import convergence_curves

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if not strategies or unknown:
        raise IdentikitError(
            f"--strategies: unknown {unknown or 'none given'}; known: "
            f"{', '.join(sorted(STRATEGIES))}"
        )
    classifier = make_classifier(args)
    # The comparison's own files are written under the same lock as its sweeps.
    with locked_folder(args.out):
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
                allow_engine_change=args.allow_engine_change,
            )
        if by_strategy is None:
            return paused(args, pause)
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
        print_json(summary)
        return 0
    header = "".join(f"{'at ' + str(t):>18s}" for t in THRESHOLDS)
    print(f"{'strategy':14s}{header}   seconds   (success rate, median queries)")
    for name, row in summary.items():
        cells = "".join(
            f"{row['success'][str(t)]:>8.0%} {_fmt(row['median_queries'][str(t)]):>9s}"
            for t in THRESHOLDS
        )
        print(f"{name:14s}{cells}   {row['seconds']:7.1f}")
    worst = _linear_ceiling(classifier)
    if worst is not None:
        reachable = [str(t) for t in THRESHOLDS if worst <= 1 - t] or ["none"]
        print(
            f"{'exact ceiling':14s}  the linear model can be made 1 - {worst:.1e} sure of "
            f"every digit; thresholds within reach: {', '.join(reachable)}"
        )
    print(f"per-digit figures in {args.out / 'compare.json'}; curves in {args.out / 'curves.png'}")
    return 0


def _linear_ceiling(classifier: Classifier) -> float | None:
    """For a linear model on raw pixels: 1 - p of the least certain digit's exact optimum."""
    from identikit.ceiling import linear_ceiling, linear_layer

    if (
        classifier.module is None
        or not classifier.preprocessing.is_identity
        or classifier.outputs != "logits"
    ):
        return None
    try:
        layer = linear_layer(classifier.module)
    except IdentikitError:
        return None
    return float(linear_ceiling(layer.weight, layer.bias).shortfall.max())


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
        print_json(rows)
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

    # judge.json goes into the sweep's folder: not while another process works in it.
    with locked_folder(args.sweep, create=False):
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
        print_json({k: verdict[k] for k in ("judges", "nearest_neighbour", "identikits")})
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

    # Before the model is loaded and the data read: a wrong --samples costs nothing.
    SAMPLES.check(args.samples, "--samples")
    classifier = make_classifier(args)
    test_images, _ = load_dataset(args.dataset, "test", args.root)
    maxima = max_probabilities(classifier, test_images, samples=args.samples, seed=args.seed)
    report = certainty_report(maxima)
    if args.out is not None:
        with locked_folder(args.out):
            write_certainty(classifier, maxima, args.out)
    if args.json:
        print_json(report)
        return 0
    print(format_certainty(classifier.name, report))
    if args.out is not None:
        print(f"histograms in {args.out / 'certainty.png'}")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's commands to the parser."""
    search = commands.add_parser(
        "search", parents=[common], help="draw identikits: search every digit, several runs each"
    )
    search.add_argument(
        "--strategy",
        default="random-masks",
        choices=sorted(STRATEGIES),
        help="search strategy (default: %(default)s)",
    )
    search.add_argument(
        "--target",
        type=open_fraction,
        default=0.99,
        help="confidence at which a run has converged (default: %(default)s)",
    )
    search.add_argument(
        "--patience",
        type=positive_int,
        default=50,
        help="iterations without gain before a run is stuck (default: %(default)s)",
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
        type=positive_float,
        default=5.0,
        help="seconds between saves of the resumable state (default: %(default)s)",
    )
    add_sweep_options(search, runs=10, max_queries=100_000)
    add_device(search)
    add_model_options(search)
    search.set_defaults(handler=cmd_search)

    compare = commands.add_parser(
        "compare", parents=[common], help="strategies on every digit under one query budget"
    )
    compare.add_argument(
        "--strategies",
        default="random-masks,evolution,square,strokes,gradient",
        help="comma-separated (default: %(default)s)",
    )
    add_sweep_options(compare, runs=5, max_queries=10_000)
    add_device(compare)
    add_model_options(compare)
    compare.set_defaults(handler=cmd_compare)

    ceiling = commands.add_parser(
        "ceiling", parents=[common], help="exact best confidence of a linear (softmax) model"
    )
    ceiling.add_argument("--model", required=True, type=Path, help="checkpoint of a softmax model")
    ceiling.add_argument("--out", type=output_path, default=None, help="folder for ceiling.png")
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
    add_data_options(judge)
    add_device(judge)
    judge.set_defaults(handler=cmd_judge)

    certainty = commands.add_parser(
        "certainty", parents=[common], help="largest softmax output: real digits vs random images"
    )
    certainty.add_argument("--model", required=True, type=Path, help="checkpoint file")
    certainty.add_argument(
        "--out",
        type=output_path,
        default=None,
        help="folder for certainty.json and certainty.png",
    )
    certainty.add_argument(
        "--samples",
        type=positive_int,
        default=10_000,
        help=f"images per source (default: %(default)s; at most {SAMPLES.default:,} unless "
        f"{SAMPLES.variable} says otherwise)",
    )
    certainty.add_argument("--seed", type=int, default=0, help="seed of the random images")
    certainty.add_argument("--json", action="store_true", help="print the result as JSON")
    add_data_options(certainty)
    add_device(certainty)
    add_model_options(certainty)
    certainty.set_defaults(handler=cmd_certainty)

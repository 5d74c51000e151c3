"""Commands that search and judge: search, compare, strategies, ceiling, judge, certainty."""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from identikit.base.atomic import atomic_write_bytes, atomic_write_text
from identikit.base.errors import IdentikitError
from identikit.base.figures import convergence_curves
from identikit.base.folder_lock import locked_folder
from identikit.base.interrupt import PauseOnInterrupt
from identikit.base.limits import MODEL_BYTES, SAMPLES
from identikit.base.safe_files import display_name, read_regular
from identikit.classifier.classifier import Classifier
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
from identikit.data.datasets import load_dataset
from identikit.engines.tuning import note_achieved_rate
from identikit.models.checkpoint import load_checkpoint
from identikit.strategies import STRATEGIES
from identikit.strategies.base import START_IMAGES
from identikit.strategies.priors import PRIORS
from identikit.strategies.registry import (
    FLAG_SETTINGS,
    describe_strategy,
    is_white_box,
    parse_option,
    setting_types,
)
from identikit.strategies.stopping import PATIENCE
from identikit.studies.ceiling import (
    ceiling_rows,
    linear_ceiling,
    linear_layer,
    model_ceiling,
    write_ceiling,
)
from identikit.studies.certainty import (
    certainty_report,
    format_certainty,
    max_probabilities,
    write_certainty,
)
from identikit.studies.judge import comparison_sweeps, judge_folders, load_judges, load_sweep
from identikit.sweeps.compare import THRESHOLDS, curves, run_comparison, summarise_strategy
from identikit.sweeps.experiment import SweepConfig, format_summary, parse_digits
from identikit.sweeps.sweep import sweep_to_folder


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
    white_box = bool(getattr(STRATEGIES[args.strategy], "white_box", False))
    if not (outcome.resumed or outcome.already_done or white_box):
        # One process, one engine, the whole sweep: a cached rate it beats by far was
        # measured on a busy machine, and is measured again next time.
        note_achieved_rate(
            classifier.choice,
            results["queries_per_second"],
            seconds=results["seconds"],
            log=lambda line: print(line, file=sys.stderr),
        )
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


def cmd_strategies(args: argparse.Namespace) -> int:
    """List every registered strategy: description, source and settings with defaults."""
    described = [describe_strategy(name) for name in sorted(STRATEGIES)]
    if args.json:
        print_json(described)
        return 0
    for entry in described:
        kind = "white-box" if entry["white_box"] else "black-box"
        print(f"{entry['name']} ({kind}): {entry['description']}")
        print(f"  source: {entry['source'] or '-'}")
        width = max((len(o["name"]) for o in entry["options"]), default=0)
        for option in entry["options"]:
            print(
                f"  --option {option['name']:<{width}}  {option['type']:<5}  "
                f"default {option['default']!r}"
            )
    print("set an option with: identikit search --strategy NAME --option NAME=VALUE")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
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
                white_box=[name for name in by_strategy if is_white_box(name)],
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
    # The hash recorded is that of the very bytes the model is built from.
    data = read_regular(args.model, limit=MODEL_BYTES)
    model, _ = load_checkpoint(args.model, data=data)
    ceiling = model_ceiling(model)
    rows = ceiling_rows(ceiling)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        name, sha256 = display_name(args.model), hashlib.sha256(data).hexdigest()
        write_ceiling(args.out, ceiling, name=name, sha256=sha256)
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
    sweeps = comparison_sweeps(args.sweep)
    for folder in sweeps:
        load_sweep(folder)  # every sweep is checked before any judge is trained
    judges = load_judges(
        [j.strip() for j in args.judges.split(",") if j.strip()],
        dataset=args.dataset,
        root=args.root,
        cache=args.cache,
        device=args.device,
        trust_code=args.trust_code,
    )
    # A comparison's folder is locked as well as its sweeps, so that no compare writes meanwhile.
    with locked_folder(args.sweep, create=False):
        verdicts = judge_folders(sweeps, judges, dataset=args.dataset, root=args.root)
    single = sweeps == [args.sweep]
    if args.json:
        keys = ("strategy", "judges", "nearest_neighbour", "identikits")
        rows = {f.name: {k: v[k] for k in keys} for f, v in zip(sweeps, verdicts, strict=True)}
        print_json(rows[args.sweep.name] if single else rows)
    elif single:
        _print_verdict(verdicts[0], args.sweep)
    else:
        _print_verdict_table(verdicts, args.sweep)
    return 0


def _print_verdict(verdict: dict[str, Any], folder: Path) -> None:
    print(f"{verdict['identikits']} identikits of {folder} ({verdict['strategy']})")
    for name, share in verdict["judges"].items():
        print(f"  {name:12s} calls {share:6.1%} of them their digit")
    print(
        f"  nearest real training digit has their class: {verdict['nearest_neighbour']:.1%} "
        f"(median distance {verdict['median_distance_own_class']:.2f} to their class, "
        f"{verdict['median_distance_other_classes']:.2f} to others)"
    )
    print(f"transfer matrices in {folder / 'judge.json'}")


def _print_verdict_table(verdicts: list[dict[str, Any]], folder: Path) -> None:
    """One row per strategy: each judge's agreement and the nearest-real-digit share."""
    names = list(dict.fromkeys(name for v in verdicts for name in v["judges"]))
    width = max([12, *(len(n) + 2 for n in names)])
    print(f"{'strategy':14s}" + "".join(f"{n:>{width}s}" for n in names) + f"{'nearest':>{width}s}")
    for verdict in verdicts:
        cells = "".join(
            f"{verdict['judges'][n]:>{width}.1%}" if n in verdict["judges"] else f"{'-':>{width}s}"
            for n in names
        )
        strategy = str(verdict["strategy"] or Path(verdict["sweep"]).name)
        print(f"{strategy:14s}{cells}{verdict['nearest_neighbour']:>{width}.1%}")
    print(
        "(share of identikits each judge calls their digit; nearest: share whose nearest real "
        f"training digit has their class); judge.json in each sweep of {folder}"
    )


def cmd_certainty(args: argparse.Namespace) -> int:
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
        default=PATIENCE,
        help="model queries without gain before a run is stuck, whatever the strategy "
        "(default: %(default)s, i.e. 50 iterations of random-masks' 500 candidates)",
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
        help=f"comma-separated image priors for strategies that take them (gradient): "
        f"{', '.join(PRIORS)}; e.g. tv,blur,jitter",
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

    strategies = commands.add_parser(
        "strategies",
        parents=[common],
        help="list the search strategies: their options, defaults and sources",
    )
    strategies.add_argument("--json", action="store_true", help="print the list as JSON")
    strategies.set_defaults(handler=cmd_strategies)

    ceiling = commands.add_parser(
        "ceiling", parents=[common], help="exact best confidence of a linear (softmax) model"
    )
    ceiling.add_argument("--model", required=True, type=Path, help="checkpoint of a softmax model")
    ceiling.add_argument(
        "--out", type=output_path, default=None, help="folder for ceiling.json and ceiling.png"
    )
    ceiling.add_argument("--json", action="store_true", help="print the result as JSON")
    ceiling.set_defaults(handler=cmd_ceiling)

    judge = commands.add_parser(
        "judge", parents=[common], help="do independent models and real digits agree?"
    )
    judge.add_argument(
        "sweep", type=Path, help="folder of a finished sweep, or of a compare (every sweep in it)"
    )
    judge.add_argument(
        "--judges",
        default="cnn-seed1,mlp,softmax",
        help="independently trained models, trained on first use and cached, or model files of "
        "your own (checkpoint or ONNX; named by file name) (default: %(default)s)",
    )
    judge.add_argument(
        "--trust-code",
        action="store_true",
        help="allow a TorchScript judge: it is a program and runs with your permissions",
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
    add_model_options(certainty, precision=False)  # every score of certainty is fp32
    certainty.set_defaults(handler=cmd_certainty)

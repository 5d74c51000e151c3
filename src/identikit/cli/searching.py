"""Commands that search and judge: search, compare, strategies, ceiling, judge, certainty."""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from identikit import api
from identikit.base.errors import IdentikitError
from identikit.base.interrupt import PauseOnInterrupt
from identikit.base.limits import MODEL_BYTES, SAMPLES
from identikit.base.safe_files import display_name, read_regular
from identikit.base.text import terminal_safe
from identikit.classifier.classifier import Classifier
from identikit.cli.options import (
    add_convention_options,
    add_data_options,
    add_device,
    add_input_shape,
    add_model_options,
    add_sweep_options,
    announce_size,
    cluster_of,
    conventions,
    make_classifier,
    open_fraction,
    output_path,
    positive_float,
    positive_int,
    print_json,
    say,
    sweep_classes,
)
from identikit.cli.tables import (
    format_ceiling,
    format_certainty,
    format_comparison,
    format_reach,
    format_summary,
)
from identikit.cli.verdicts import format_judged, format_judged_table
from identikit.engines.tuning import note_achieved_rate
from identikit.models.checkpoint import load_checkpoint
from identikit.strategies import STRATEGIES, RunHooks
from identikit.strategies.base import START_IMAGES
from identikit.strategies.priors import PRIORS
from identikit.strategies.registry import (
    FLAG_SETTINGS,
    describe_strategy,
    is_white_box,
    make_strategy,
    parse_option,
    setting_types,
)
from identikit.strategies.shape_defaults import derived_line, from_the_shape
from identikit.strategies.stopping import PATIENCE
from identikit.studies.ceiling import (
    ceiling_rows,
    linear_ceiling,
    linear_layer,
    model_ceiling,
    write_ceiling,
)
from identikit.studies.certainty import images_scored
from identikit.studies.judge import JudgeSetup
from identikit.sweeps.compare import (
    THRESHOLDS,
    Comparison,
)
from identikit.sweeps.experiment import SweepConfig, parse_classes
from identikit.sweeps.sweep import SweepOptions


def paused(args: argparse.Namespace, pause: PauseOnInterrupt) -> int:
    """After Ctrl-C or SIGTERM: say where the work is saved and the command that resumes it;
    exit 130 (Ctrl-C) or 143 (SIGTERM), as the shell would."""
    command = terminal_safe(shlex.join(["identikit", *args.argv]))
    out = terminal_safe(args.out)
    print(f"identikit: paused; saved in {out}. Resume with:\n  {command}", file=sys.stderr)
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


def _search_config(args: argparse.Namespace) -> SweepConfig:
    """The sweep the search command's flags ask for (its classes None, every class of the
    model, where ``--classes`` names none)."""
    return SweepConfig(
        classes=parse_classes(args.classes),
        runs=args.runs,
        strategy=args.strategy,
        strategy_settings=_strategy_settings(args),
        seed=args.seed,
        target=args.target,
        patience=args.patience,
        max_queries=args.max_queries,
        start=args.start,
    )


def budget(config: SweepConfig) -> int:
    """The images a sweep may score at most: every run's whole budget (its classes known:
    see :func:`~identikit.cli.options.sweep_classes`)."""
    return len(config.targets) * config.runs * config.max_queries


def run_sweep(
    args: argparse.Namespace, call: Callable[[SweepOptions, RunHooks], api.SearchResult]
) -> api.SearchResult | int:
    """A sweep command's search, ``call(options, hooks)``, with the options its flags ask for,
    paused by Ctrl-C or SIGTERM: its result, or the exit code of a paused search."""
    options = SweepOptions(
        progress=not args.no_progress,
        model_path=str(args.model),
        save_every=args.save_every,
        allow_engine_change=args.allow_engine_change,
    )
    with PauseOnInterrupt() as pause:
        try:
            return call(options, RunHooks(should_stop=pause))
        except api.Stopped:
            return paused(args, pause)


def cmd_search(args: argparse.Namespace) -> int:
    config = sweep_classes(args, _search_config(args))
    work = budget(config)
    classifier = make_classifier(args, work)
    # A class the model lacks: one line naming its number of classes, before any search.
    config = config.for_classes(classifier.num_classes)
    cluster = cluster_of(args, work)
    announce_size(config, classifier, cluster)
    derived = derived_line(config.spec.make(), classifier.info.input_shape)
    if derived is not None:  # settings not MNIST's, taken from the image's shape
        say(derived)
    result = run_sweep(
        args,
        lambda options, hooks: api.search(
            classifier, config, out=args.out, options=options, hooks=hooks, cluster=cluster
        ),
    )
    if isinstance(result, int):
        return result
    here = cluster is None  # a cluster's rate is not this process's engine's
    if here and not (result.resumed or result.already_done or is_white_box(args.strategy)):
        # One process, one engine, the whole sweep: a cached rate it beats by far was
        # measured on a busy machine, and is measured again next time.
        note_achieved_rate(
            classifier.choice,
            result.record["queries_per_second"],
            seconds=result.record["seconds"],
            log=say,
        )
    report_sweep(args, result)
    return 0


def report_sweep(args: argparse.Namespace, outcome: api.SearchResult) -> None:
    """What a finished search prints: what was rebuilt or resumed, then its summary."""
    results = outcome.record
    out = terminal_safe(args.out)
    if outcome.rebuilt:
        print(
            f"{out}: rebuilt {', '.join(outcome.rebuilt)} of the finished sweep",
            file=sys.stderr,
        )
    if outcome.already_done:
        print(f"{out} holds this sweep, finished: nothing to do", file=sys.stderr)
    elif outcome.resumed:
        print(f"resumed and finished the sweep saved in {out}", file=sys.stderr)
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
        print(f"results in {out}/: results.json, identikits.npz, grid.png")


def cmd_strategies(args: argparse.Namespace) -> int:
    """List every registered strategy: description, source and settings with defaults."""
    described = [describe_strategy(name) for name in sorted(STRATEGIES)]
    for entry in described:  # a default of 0 that stands for "from the image's shape"
        shaped = from_the_shape(make_strategy(entry["name"]))
        for option in entry["options"]:
            option["from_the_shape"] = option["name"] in shaped
            if option["from_the_shape"]:
                option["on_mnist"] = shaped[option["name"]]
    if args.json:
        print_json(described)
        return 0
    for entry in described:
        kind = "white-box" if entry["white_box"] else "black-box"
        print(f"{entry['name']} ({kind}): {entry['description']}")
        print(f"  source: {entry['source'] or '-'}")
        width = max((len(o["name"]) for o in entry["options"]), default=0)
        for option in entry["options"]:
            default = (
                f"from the image's shape ({option['on_mnist']!r} on MNIST)"
                if option["from_the_shape"]
                else f"{option['default']!r}"
            )
            print(f"  --option {option['name']:<{width}}  {option['type']:<5}  default {default}")
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
    comparison = Comparison(
        tuple(strategies),
        digits=parse_classes(args.classes),
        runs=args.runs,
        max_queries=args.max_queries,
        seed=args.seed,
        allow_engine_change=args.allow_engine_change,
    )
    config = sweep_classes(args, comparison.config(strategies[0]))
    comparison = replace(comparison, digits=config.targets)  # every class: the model's
    work = len(strategies) * budget(config)
    classifier = make_classifier(args, work)
    config = config.for_classes(classifier.num_classes)  # a class it lacks: one line
    cluster = cluster_of(args, work)
    announce_size(config, classifier, cluster, sweeps=len(strategies))
    options = SweepOptions(progress=not args.no_progress, model_path=str(args.model))
    with PauseOnInterrupt() as pause:
        try:
            result = api.compare(
                classifier,
                comparison,
                out=args.out,
                options=options,
                hooks=RunHooks(should_stop=pause),
                cluster=cluster,
            )
        except api.Stopped:
            return paused(args, pause)
    if args.json:
        print_json(result.summary)
        return 0
    print(format_comparison(result.summary, THRESHOLDS))
    worst = _linear_ceiling(classifier)
    if worst is not None:
        print(format_reach(worst, THRESHOLDS))
    out = terminal_safe(args.out)
    print(f"per-digit figures in {out}/compare.json; curves in {out}/curves.png")
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


def cmd_ceiling(args: argparse.Namespace) -> int:
    # The hash recorded is that of the very bytes the model is built from.
    data = read_regular(args.model, limit=MODEL_BYTES)
    model, meta = load_checkpoint(args.model, data=data)
    ceiling = model_ceiling(model)
    rows = ceiling_rows(ceiling)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        name, sha256 = display_name(args.model), hashlib.sha256(data).hexdigest()
        write_ceiling(args.out, ceiling, name=name, sha256=sha256, shape=meta["input_shape"])
    if args.json:
        print_json(rows)
        return 0
    print(format_ceiling(rows))
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    setup = JudgeSetup(
        dataset=args.dataset,
        root=args.root,
        cache=args.cache,
        device=args.device,
        trust_code=args.trust_code,
        log=say,
        epochs=args.judge_epochs,
        conventions=conventions(args),
        input_shape=args.input_shape,
    )
    names = [j.strip() for j in args.judges.split(",") if j.strip()]
    results = api.judge(args.sweep, names, setup)
    sweeps = [r.folder for r in results]
    verdicts = [r.verdict for r in results]
    single = sweeps == [args.sweep]
    if args.json:
        rows = {f.name: _judged_json(v) for f, v in zip(sweeps, verdicts, strict=True)}
        print_json(rows[args.sweep.name] if single else rows)
    elif single:
        print(format_judged(verdicts[0], args.sweep))
    else:
        print(format_judged_table(verdicts, args.sweep))
    return 0


def _judged_json(verdict: dict[str, Any]) -> dict[str, Any]:
    """A sweep's verdict as ``judge --json`` prints it: every judge's agreement and own
    accuracy (``judge_info``), the nearest-image share, and the class names where known."""
    keys = ("strategy", "judges", "judge_info", "nearest_neighbour", "identikits", "class_names")
    return {k: verdict[k] for k in keys if k in verdict}


def cmd_certainty(args: argparse.Namespace) -> int:
    # Before the model is loaded and the data read: a wrong --samples costs nothing.
    SAMPLES.check(args.samples, "--samples")
    result = api.certainty(
        make_classifier(args, images_scored(args.samples)),
        samples=args.samples,
        seed=args.seed,
        dataset=args.dataset,
        root=args.root,
        out=args.out,
    )
    if args.json:
        print_json(result.statistics)
        return 0
    print(format_certainty(result.model, result.statistics))
    if args.out is not None:
        print(f"histograms in {terminal_safe(args.out / 'certainty.png')}")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's commands to the parser."""
    _add_search(commands, common)
    _add_compare(commands, common)
    _add_strategies(commands, common)
    _add_ceiling(commands, common)
    _add_judge(commands, common)
    _add_certainty(commands, common)


def _add_search(commands: Any, common: argparse.ArgumentParser) -> None:
    """The search command: a sweep of one strategy."""
    search = commands.add_parser(
        "search", parents=[common], help="draw identikits: search every class, several runs each"
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
    _add_strategy_settings(search)
    search.add_argument(
        "--save-every",
        type=positive_float,
        default=5.0,
        help="seconds between saves of the resumable state (default: %(default)s)",
    )
    add_sweep_options(search, runs=10, max_queries=100_000)
    add_device(search)
    add_model_options(search, classes_flag=False)
    search.set_defaults(handler=cmd_search)


def _add_strategy_settings(search: argparse.ArgumentParser) -> None:
    """The search command's flags that set the strategy's settings."""
    search.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="random-masks: masks per iteration (default: from the image's shape, 500 on "
        "grey images of at least 28 x 28, else 20)",
    )
    search.add_argument(
        "--mask-density",
        type=float,
        default=None,
        help="random-masks: probability a value is perturbed (default: from the image's "
        "shape, 0.05 on grey images, about six values on colour ones)",
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


def _add_compare(commands: Any, common: argparse.ArgumentParser) -> None:
    """The compare command: strategies on every class under one query budget."""
    compare = commands.add_parser(
        "compare", parents=[common], help="strategies on every class under one query budget"
    )
    compare.add_argument(
        "--strategies",
        default="random-masks,evolution,square,strokes,gradient",
        help="comma-separated (default: %(default)s)",
    )
    add_sweep_options(compare, runs=5, max_queries=10_000)
    add_device(compare)
    add_model_options(compare, classes_flag=False)
    compare.set_defaults(handler=cmd_compare)


def _add_strategies(commands: Any, common: argparse.ArgumentParser) -> None:
    """The strategies command: the registry, listed."""
    strategies = commands.add_parser(
        "strategies",
        parents=[common],
        help="list the search strategies: their options, defaults and sources",
    )
    strategies.add_argument("--json", action="store_true", help="print the list as JSON")
    strategies.set_defaults(handler=cmd_strategies)


def _add_ceiling(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ceiling command: a linear model's exact best confidence."""
    ceiling = commands.add_parser(
        "ceiling", parents=[common], help="exact best confidence of a linear (softmax) model"
    )
    ceiling.add_argument("--model", required=True, type=Path, help="checkpoint of a softmax model")
    ceiling.add_argument(
        "--out", type=output_path, default=None, help="folder for ceiling.json and ceiling.png"
    )
    ceiling.add_argument("--json", action="store_true", help="print the result as JSON")
    ceiling.set_defaults(handler=cmd_ceiling)


def _add_judge(commands: Any, common: argparse.ArgumentParser) -> None:
    """The judge command: do independent models and real images agree?"""
    judge = commands.add_parser(
        "judge", parents=[common], help="do independent models and real images agree?"
    )
    judge.add_argument(
        "sweep", type=Path, help="folder of a finished sweep, or of a compare (every sweep in it)"
    )
    judge.add_argument(
        "--judges",
        default="cnn-seed1,mlp,softmax",
        help="independently trained models, trained on first use and cached (refused where "
        "the dataset has under 1,000 training images, or where one scores under 50%% on its "
        "test images), or model files of your own (checkpoint, ONNX, TorchScript with "
        "--trust-code; named by file name; read with the conventions below) (default: "
        "%(default)s)",
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
    judge.add_argument(
        "--judge-epochs",
        type=positive_int,
        default=None,
        help="epochs to train the built-in judges for (default: each architecture's own)",
    )
    judge.add_argument("--json", action="store_true", help="print a JSON summary last")
    group = judge.add_argument_group(
        "file judge conventions (one set, for every model file named in --judges; built-in "
        "judges take identikit's own)"
    )
    add_convention_options(
        group,
        outputs_default="detected",
        layout_default="an ONNX model's own where its input says, else nchw",
    )
    add_input_shape(
        group,
        "the shape of a file judge's images, e.g. 3,32,32 (default: what the file says; "
        "else 1,28,28)",
    )
    add_data_options(judge, any_shape=True)
    add_device(judge)
    judge.set_defaults(handler=cmd_judge)


def _add_certainty(commands: Any, common: argparse.ArgumentParser) -> None:
    """The certainty command: largest softmax output, real images vs random ones."""
    certainty = commands.add_parser(
        "certainty", parents=[common], help="largest softmax output: real images vs random ones"
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
    add_data_options(certainty, any_shape=True)
    add_device(certainty)
    add_model_options(certainty, precision=False)  # every score of certainty is fp32
    certainty.set_defaults(handler=cmd_certainty)

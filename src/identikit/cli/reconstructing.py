"""The reconstruct command: what every class looks like, from the model alone (issue 17)."""

from __future__ import annotations

import argparse
from typing import Any

from identikit import api
from identikit.base.shapes import ImageShape
from identikit.base.text import terminal_safe
from identikit.classifier.classifier import Classifier
from identikit.cli.options import (
    add_device,
    add_model_options,
    add_sweep_options,
    announce_size,
    cluster_of,
    make_classifier,
    model_probe,
    open_fraction,
    positive_float,
    positive_int,
    say,
    sweep_classes,
)
from identikit.cli.searching import budget, report_sweep, run_sweep
from identikit.models.batch_norm_taps import layers_line
from identikit.strategies.registry import StrategySpec, parse_option
from identikit.sweeps.experiment import SweepConfig, parse_classes
from identikit.sweeps.reconstruction import (
    BLACK_BOX,
    COLOUR,
    COLOUR_BLACK_BOX,
    COLOUR_SIDE,
    LARGE_COLOUR_STEPS,
    RECIPES,
    RECONSTRUCT,
    STEPS,
    TARGET,
    recipe,
    reconstruction_config,
)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    # The recipe follows the model's images: a first, unmeasured load says their shape (and
    # the model's classes), so that the options are checked against the recipe's strategy
    # before the engines are measured for the sweep's budget.
    probe = None if args.recipe == "strokes" else model_probe(args)
    shape = None if probe is None else probe.info.input_shape
    strategy = recipe(shape, black_box=args.black_box, choice=args.recipe)
    args.strategy = strategy  # what the engine messages and checks read
    settings = dict(parse_option(strategy, option) for option in args.option)
    config = _config(args, StrategySpec(strategy, settings), shape)
    if probe is not None and not config.resolved:
        config = config.for_classes(args.num_classes or probe.num_classes)
    config = sweep_classes(args, config)
    classifier = make_classifier(args, budget(config))
    config = config.for_classes(classifier.num_classes)  # a class it lacks: one line
    if strategy == COLOUR:
        say_statistics(classifier, config)
    elif strategy == COLOUR_BLACK_BOX:
        say(
            f"{terminal_safe(classifier.name)}: gradients estimated from scores alone; "
            "drawing without the statistics term (a black box's batch norms are out of reach)"
        )
    cluster = cluster_of(args, budget(config))
    announce_size(config, classifier, cluster)
    result = run_sweep(
        args,
        lambda options, hooks: api.reconstruct(
            classifier, config, out=args.out, options=options, hooks=hooks, cluster=cluster
        ),
    )
    if isinstance(result, int):
        return result
    report_sweep(args, result)
    return 0


def _config(
    args: argparse.Namespace, strategy: StrategySpec, shape: ImageShape | None = None
) -> SweepConfig:
    """The reconstruction's sweep as the options ask, with ``strategy`` on images of ``shape``."""
    return reconstruction_config(
        strategy,
        classes=parse_classes(args.classes),  # None: every class of the model
        runs=args.runs,
        seed=args.seed,
        steps=args.steps,
        target=args.target,
        shape=shape,
    )


def say_statistics(classifier: Classifier, config: SweepConfig) -> None:
    """One line before a colour reconstruction: which batch-norm layers' statistics it
    matches, or that it draws without them."""
    strategy = config.spec.make()
    if not getattr(strategy, "bn_weight", 0):
        line = "batch-norm statistics off (bn_weight 0)"
    else:
        layers = classifier.batch_norm_layers()
        line = layers_line(layers)
        line += "" if layers else "; drawing without the statistics term"
        line += f"; {strategy.grouping(len(config.targets) * config.runs) or ''}"
    say(f"{terminal_safe(classifier.name)}: {line}")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the reconstruct command to the parser."""
    reconstruct = commands.add_parser(
        "reconstruct",
        parents=[common],
        help="draw every class from the model alone: pen strokes or colour, no data read",
        description="A data-free reconstruction, reading nothing but the model (no dataset "
        "is read or fetched; results.json records uses_data: false). Grey models: gradient "
        "ascent on a few pen strokes, robust to random shifts, scalings and rotations. Colour "
        "models: DeepInversion (the model's own batch-norm statistics over a batch of runs, "
        "jitter, flips, total variation; results.json records the batches). Its folder is a "
        "sweep folder: identikit judge and identikit report read it; the same command resumes it.",
    )
    reconstruct.add_argument(
        "--recipe",
        choices=("auto", *RECIPES),
        default="auto",
        help="how to draw: strokes (pen strokes, for grey digits), colour (DeepInversion: the "
        "model's batch-norm statistics, jitter, flips, total variation) or auto (default: "
        "colour for 3-channel models, strokes for others)",
    )
    reconstruct.add_argument(
        "--black-box",
        action="store_true",
        help=f"use the model's outputs alone, no gradients: the {BLACK_BOX} strategy "
        f"(evolution strategies on the same pen strokes), or for the colour recipe "
        f"{COLOUR_BLACK_BOX} (its gradients estimated from scores, no statistics term)",
    )
    reconstruct.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"steps per run at most (default: {STEPS[RECONSTRUCT]}, "
        f"{STEPS[BLACK_BOX]} with --black-box; the colour recipe {STEPS[COLOUR]} on images of "
        f"up to {COLOUR_SIDE} pixels a side, {LARGE_COLOUR_STEPS} on larger ones)",
    )
    reconstruct.add_argument(
        "--target",
        type=open_fraction,
        default=TARGET,
        help="confidence on the model at which a run stops drawing (default: %(default)s)",
    )
    reconstruct.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the strategy, e.g. strokes=5 (identikit strategies lists them; "
        "repeatable)",
    )
    reconstruct.add_argument(
        "--save-every",
        type=positive_float,
        default=5.0,
        help="seconds between saves of the resumable state (default: %(default)s)",
    )
    add_sweep_options(reconstruct, runs=10, max_queries=None)
    add_device(reconstruct)
    add_model_options(reconstruct, precision=False, classes_flag=False)
    reconstruct.set_defaults(handler=cmd_reconstruct, strategy=RECONSTRUCT)

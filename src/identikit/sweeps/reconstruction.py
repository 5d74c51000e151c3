"""The data-free reconstruction as a sweep: the ``reconstruct`` strategy's recipe and budget.

``identikit reconstruct`` is a search with the recipe that came out best in the measurements
of issue 17 (see README, "What the network remembers"), run for a fixed number of steps, held
to reading no data (:mod:`identikit.base.data_free`). Its folder is an ordinary sweep folder:
``identikit judge`` and ``identikit report`` read it, and the same command resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.strategies.parameterisations import RGB
from identikit.strategies.registry import StrategySpec
from identikit.sweeps.experiment import SweepConfig

RECONSTRUCT = "reconstruct"
# The black-box twin (model outputs only): evolution strategies on the same pen strokes.
BLACK_BOX = "pen-evolution"
# The colour recipe: DeepInversion with the model's batch-norm statistics (issue 30), and its
# black-box twin (the same recipe, gradients estimated from scores, no statistics term).
COLOUR = "invert"
COLOUR_BLACK_BOX = "invert-black-box"
# The default reconstruction: the white box with its default settings.
WHITE_BOX = StrategySpec(RECONSTRUCT)
# Steps of a run of each (each step: the strategy's queries_per_step in queries); the black box
# estimates its gradient from 40 queries a step, so it takes fewer, longer steps. The colour
# recipe's 300 are for images of up to COLOUR_SIDE pixels a side: on the CIFAR-10 ResNet-20,
# 300 steps brought every image of a batch of 20 to >= 0.99 and the ResNet-56 called 80% of
# them their class (issue 30's measurement).
STEPS = {RECONSTRUCT: 300, BLACK_BOX: 200, COLOUR: 300, COLOUR_BLACK_BOX: 200}
# On larger images (224 x 224 ImageNet ones) a step costs about 50 times a 32 x 32 one's even
# at half the size, where the first 85% of the steps draw: 200 of them, as measured on
# EfficientNet-Lite0 (400 did no better), the first 100 seen at 112 x 112, the next upsampled
# to 224; then 35 polishing steps at full size; about 13 minutes for 40 images on 2 cores.
COLOUR_SIDE, LARGE_COLOUR_STEPS = 64, 235
COLOURS = (COLOUR, COLOUR_BLACK_BOX)
# The recipes by name (``identikit reconstruct --recipe``): (white box, black box).
RECIPES = {"strokes": (RECONSTRUCT, BLACK_BOX), "colour": (COLOUR, COLOUR_BLACK_BOX)}
# A run polishes its last 1 / POLISH of steps: the image itself, without views or penalties,
# where the penalties would hold a weaker model's confidence below the target.
POLISH = 6
# The confidence on the model itself at which a run is done. A run goes on drawing while the
# model is less sure than this, so it stops with an image the model is sure of under every
# view, not at the first image that passes 0.99.
TARGET = 0.9999
# The confidence at which a reconstruction's run counts as converged in tables and pictures:
# the README's measure, below the stopping target above.
RECONSTRUCTION_MEASURE = 0.99


class SweepChoice(TypedDict, total=False):
    """What a reconstruction chooses of its sweep as any sweep does (:class:`SweepConfig`'s
    fields of the same names): its classes (None, the default: every class of the model;
    ``digits`` is their older name), its runs per class (10) and its seed (0)."""

    classes: Sequence[int] | None
    digits: tuple[int, ...] | None
    runs: int
    seed: int


def recipe(shape: ImageShape | None, *, black_box: bool = False, choice: str = "auto") -> str:
    """The strategy that draws a model's classes: ``choice`` ``strokes`` (pen strokes, for grey
    digits), ``colour`` (:data:`COLOUR`, DeepInversion) or ``auto``, which picks by the images
    the model takes: the colour recipe for 3-channel images of any size, pen strokes for
    others (MNIST's, as they always were). ``black_box``: the recipe's black-box strategy."""
    if choice == "auto":
        if shape is None:
            raise IdentikitError("the recipe for the model's images needs their shape")
        choice = "colour" if shape.channels == RGB else "strokes"
    if choice not in RECIPES:
        raise IdentikitError(f"--recipe must be auto, {' or '.join(RECIPES)}, got {choice!r}")
    return RECIPES[choice][1 if black_box else 0]


def default_steps(strategy: str, shape: ImageShape | None = None) -> int:
    """The steps of a run of ``strategy`` on images of ``shape`` (see :data:`STEPS`)."""
    large = shape is not None and max(shape.height, shape.width) > COLOUR_SIDE
    if strategy in COLOURS and large:
        return LARGE_COLOUR_STEPS
    return STEPS[strategy]


def reconstruction_config(
    strategy: StrategySpec = WHITE_BOX,
    *,
    steps: int | None = None,
    target: float = TARGET,
    shape: ImageShape | None = None,
    **sweep: Unpack[SweepChoice],
) -> SweepConfig:
    """The sweep of a reconstruction: ``steps`` steps (default: :func:`default_steps` of the
    strategy on images of ``shape``) of ``strategy`` (``reconstruct``, its black-box twin, or
    the colour recipe ``invert``, with the settings given; the last sixth of the pen strokes'
    steps polish unless they say otherwise, see ``polish_after``; the colour recipe plans its
    step sizes over the steps), every run to ``target`` or to the end of its steps (the
    colour recipe's always to the end); never stopped as stuck (its steps are its budget).
    ``sweep`` chooses the classes drawn, runs and seed (:class:`SweepChoice`); its classes
    None, the default, are every class of the model (resolved when the sweep meets it)."""
    unknown = sorted(set(sweep) - set(SweepChoice.__annotations__))
    if unknown:  # the budget, patience and strategy are the recipe's own
        raise IdentikitError(
            f"a reconstruction takes no {', '.join(unknown)}: its steps set its budget"
        )
    if strategy.name not in STEPS:
        raise IdentikitError(
            f"a reconstruction draws with {' or '.join(STEPS)}, not {strategy.name!r}"
        )
    steps = steps or default_steps(strategy.name, shape)
    if strategy.name in COLOURS:  # its step size decays over the planned steps
        chosen = {"steps": steps, **strategy.settings}
    else:  # the last sixth of the steps polish (no views, no penalties), unless the settings say
        chosen = {"polish_after": steps - steps // POLISH, **strategy.settings}
    made = StrategySpec(strategy.name, chosen).make()
    if strategy.name in COLOURS:  # where --option steps says other than --steps
        steps = int(chosen["steps"])
    # One query more: the start image is scored before the first step.
    budget = steps * made.queries_per_step + 1
    return SweepConfig(
        **sweep,
        strategy=strategy.name,
        strategy_settings=chosen,
        target=target,
        patience=budget,
        max_queries=budget,
    )


def convergence_measure(settings: Mapping[str, Any]) -> float:
    """The confidence at which a run counts as converged on the page: a reconstruction that
    kept its own stopping target (0.9999) is measured at 0.99, as the README measures it;
    every other sweep at its ``--target``."""
    target = float(settings["target"])
    if settings.get("strategy") in STEPS and target == TARGET:
        return RECONSTRUCTION_MEASURE
    return target

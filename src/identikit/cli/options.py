"""Options and helpers shared by the commands: one-line errors, data, model and device options."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from identikit.base.device import DEVICE_CHOICES
from identikit.base.errors import IdentikitError
from identikit.base.limits import CLASSES, NAMES_BYTES
from identikit.base.safe_files import read_regular
from identikit.base.shapes import ImageShape
from identikit.base.text import terminal_lines, terminal_safe
from identikit.classifier import Classifier, load_classifier
from identikit.cluster.model_source import LoadOptions, ModelSource
from identikit.cluster.ray_sweep import GPU_SHARE, RETRIES, RayCluster
from identikit.data.datasets import DATASETS
from identikit.engines import BACKENDS, PRECISIONS
from identikit.engines.choices import MAX_CHUNK
from identikit.engines.options import EngineOptions
from identikit.engines.precision import tf32_in_use
from identikit.models.info import Expected
from identikit.models.preprocessing import (
    INPUT_RANGES,
    LAYOUTS,
    OUTPUT_KINDS,
    Preprocessing,
    Values,
)
from identikit.strategies import STRATEGIES
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import size_line


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line, like every other identikit error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def output_path(text: str) -> Path:
    """An output file or folder: not empty (``--out ''`` would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not an output")
    return Path(text)


def add_data_options(parser: argparse.ArgumentParser, *, any_shape: bool = False) -> None:
    """``--dataset`` and ``--root``; ``any_shape``: the command takes every dataset spec of
    :func:`~identikit.data.images.load_images`, not only the IDX ones."""
    names = ", ".join(sorted(DATASETS))
    if any_shape:
        what = (
            f"{names}, idx:DIR (a folder of IDX files under MNIST's names), npz:FILE, "
            "folder:DIR (one subfolder of pictures per class), cifar10:DIR, sklearn-digits or "
            "shapes[:SEED]"
        )
    else:
        what = f"{names}, or idx:DIR for any folder of IDX files under MNIST's names"
    parser.add_argument(
        "--dataset",
        default="mnist",
        help=f"{what} (default: %(default)s)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="folder with the IDX files (default: $IDENTIKIT_DATA, else ~/.cache/identikit)",
    )


def add_convention_options(
    parser: argparse.ArgumentParser | Any, *, outputs_default: str, layout_default: str
) -> None:
    """A model's input range, normalisation, layout and kind of outputs (see
    ``Preprocessing``); the defaults of ``--outputs`` and ``--layout`` as the help states them
    (the options themselves default to None)."""
    parser.add_argument(
        "--input-range",
        default="0,1",
        choices=sorted(INPUT_RANGES),
        # argparse would show the choices as {-1,1,0,1,0,255}: unreadable, the commas being
        # part of the values.
        metavar="RANGE",
        help=f"pixel range the model expects: {' | '.join(INPUT_RANGES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--mean",
        type=channel_values,
        default=0.0,
        help="subtracted after scaling: one value, or one per channel such as "
        "0.485,0.456,0.406 (default: %(default)s)",
    )
    parser.add_argument(
        "--std",
        type=positive_channel_values,
        default=1.0,
        help="divided by after subtracting the mean: one value, or one per channel "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--layout",
        default=None,
        choices=LAYOUTS,
        help="how the model's input is laid out: nchw (channels first) or nhwc (channels "
        f"last, as Keras and TensorFlow models take) (default: {layout_default})",
    )
    parser.add_argument(
        "--outputs",
        default=None,
        choices=OUTPUT_KINDS,
        help=f"what the model returns (default: {outputs_default})",
    )


def add_input_shape(
    group: argparse._ArgumentGroup,
    help_text: str = "the shape of the model's images, e.g. 3,32,32 (default: what the model "
    "file says: a checkpoint's recorded shape, an ONNX input's static dimensions; else 1,28,28)",
) -> None:
    """The ``--input-shape C,H,W`` option of a model's conventions, checked as it is parsed."""
    group.add_argument(
        "--input-shape", type=image_shape, default=None, metavar="C,H,W", help=help_text
    )


def add_model_options(
    parser: argparse.ArgumentParser, *, precision: bool = True, classes_flag: bool = True
) -> None:
    """How to read a model file (checkpoint, TorchScript or ONNX) and its conventions;
    ``precision=False`` for commands that score in fp32 only (see :func:`add_backend_options`);
    ``classes_flag=False`` for the sweep commands, whose ``--classes`` chooses the classes to
    search (:func:`add_sweep_options`): the number the model must return is then
    ``--num-classes`` alone, as it is on every command."""
    group = parser.add_argument_group("model conventions (for TorchScript and ONNX models)")
    add_convention_options(
        group,
        outputs_default="detected",
        layout_default="an ONNX model's own where its input says, else nchw",
    )
    add_input_shape(group)
    group.add_argument(
        *(("--num-classes", "--classes") if classes_flag else ("--num-classes",)),
        dest="num_classes",
        type=class_count,
        default=None,
        metavar="N",
        help="number of classes the model must return (default: any)",
    )
    group.add_argument(
        "--class-names",
        type=class_names,
        default=None,
        metavar="A,B,...|@FILE",
        help="class names for tables and reports: comma-separated, or @FILE with one name a "
        "line (default: what the model file or the dataset records, else the numbers)",
    )
    group.add_argument(
        "--chunk-size",
        type=chunk_size,
        default=None,
        help=f"images per forward pass, 1 to {MAX_CHUNK:,} (default: measured with the backend)",
    )
    group.add_argument(
        "--trust-code",
        action="store_true",
        help="allow loading a TorchScript model: it is a program and runs with your "
        "permissions (never for a file you did not make or do not trust)",
    )
    add_backend_options(parser, precision=precision)


def add_backend_options(parser: argparse.ArgumentParser, *, precision: bool = True) -> None:
    """The scoring engine and the precision candidates are ranked in (see
    ``identikit.engines``); ``precision=False`` for commands whose every score is fp32
    (``evaluate``, ``certainty``), where ``--precision`` would mean nothing."""
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", *BACKENDS),
        help="scoring engine; auto measures them once per machine and model and takes the "
        "fastest (default: %(default)s)",
    )
    if not precision:
        return
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="the precision black-box search candidates are ranked in: bf16 in bfloat16 "
        "(CPUs with AVX-512 BF16 or AMX, recent GPUs), int8 with an int8 copy of the model in "
        "ONNX Runtime (CPUs); either way the kept ones are re-scored in fp32, and white-box "
        "strategies (gradient) work in fp32 (default: %(default)s)",
    )


def white_box_strategies(args: argparse.Namespace) -> list[str]:
    """The white-box strategies (they take gradients) that the command will run: ``search``'s
    ``--strategy`` or ``compare``'s ``--strategies``; none for other commands."""
    if hasattr(args, "strategy"):
        names = [args.strategy]
    else:
        names = [n.strip() for n in getattr(args, "strategies", "").split(",")]
    return [n for n in names if getattr(STRATEGIES.get(n), "white_box", False)]


def _check_precision_applies(args: argparse.Namespace, precision: str) -> None:
    """Refuse a low ranking precision for a search by a white-box strategy, which has no
    candidates to rank: it follows gradients, computed in fp32 by PyTorch."""
    if precision != "fp32" and hasattr(args, "strategy") and white_box_strategies(args):
        raise IdentikitError(
            f"--precision {precision} does not apply to --strategy {args.strategy}, which "
            "works in fp32 with PyTorch"
        )


def _say_what_scores(args: argparse.Namespace, classifier: Classifier, precision: str) -> None:
    """Tell the user what computes the search: the chosen engine ranks candidates, but
    gradients always come from PyTorch in fp32 (:meth:`Classifier.value_and_grad`)."""
    white_box = white_box_strategies(args)
    name = terminal_safe(classifier.name)  # a file's name: it may hold escapes
    engine = classifier.choice.summary()
    if classifier.device.type == "cuda":
        engine += "; TF32 on" if tf32_in_use(classifier.device) else "; float32 as IEEE (no TF32)"
    if not white_box:
        print(f"{name}: scoring with {engine}", file=sys.stderr)
        return
    classifier.differentiable()  # an ONNX graph without gradients is refused here, in one line
    gradients = f"gradients with {classifier.gradients_by}"
    if hasattr(args, "strategy"):
        print(f"{name}: {gradients}; other scores with {engine}", file=sys.stderr)
        return
    note = f" (--precision {precision} ranks the other strategies' candidates)"
    print(
        f"{name}: {', '.join(white_box)}: {gradients}"
        f"{note if precision != 'fp32' else ''}; other scoring with {engine}",
        file=sys.stderr,
    )


def engine_options(args: argparse.Namespace, work: int | None = None) -> EngineOptions:
    """The scoring-engine options of a command: ``--backend``, ``--precision`` (fp32 for
    commands without it, whose every score is fp32), ``--chunk-size``, ``--remeasure``, and
    the ``work`` ahead (a sweep's budget, which decides whether ``torch.compile`` repays its
    compilation); what the engine measurement says goes to stderr."""
    return EngineOptions(
        backend=args.backend,
        precision=getattr(args, "precision", "fp32"),
        chunk_size=args.chunk_size,
        remeasure=getattr(args, "remeasure", False),
        work=work,
        log=say,
    )


def load_options(args: argparse.Namespace, work: int | None = None) -> LoadOptions:
    """How the command's options load ``--model``, for ``work`` images ahead (a sweep's
    budget; see :func:`engine_options`)."""
    names = args.class_names or None
    return LoadOptions(
        device=args.device,
        preprocessing=conventions(args),
        expect=Expected(args.num_classes, names, args.input_shape),
        engine=engine_options(args, work),
        trust_code=args.trust_code,
    )


def make_classifier(args: argparse.Namespace, work: int | None = None) -> Classifier:
    """The Classifier for ``--model`` with the command's model-convention options; ``work``:
    the images a sweep may score at most (its budget), which its engine choice weighs."""

    options = load_options(args, work)
    engine = options.engine or EngineOptions()
    _check_precision_applies(args, engine.precision)  # before the model is loaded: costs nothing
    classifier = load_classifier(
        args.model,
        device=options.device,
        preprocessing=options.preprocessing,
        expect=options.expect,
        engine=engine,
        trust_code=options.trust_code,
    )
    _say_what_scores(args, classifier, engine.precision)
    if classifier.detected_outputs and classifier.outputs != "logits":
        print(
            f"{terminal_safe(classifier.name)}: outputs detected as {classifier.outputs} "
            "(set --outputs to override)",
            file=sys.stderr,
        )
    return classifier


def conventions(args: argparse.Namespace, *, outputs: str | None = None) -> Preprocessing:
    """The model conventions of a command's options (``outputs``: the kind of outputs when
    ``--outputs`` is not given)."""
    return Preprocessing(
        input_range=args.input_range,
        mean=args.mean,
        std=args.std,
        outputs=args.outputs or outputs,
        layout=args.layout,
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="where to run the model; auto takes a GPU when there is one (default: %(default)s)",
    )


def say(line: str) -> None:
    """Print a line a command says on its way to stderr, made safe for a terminal (it may name
    a file, whose name may hold escapes)."""
    print(terminal_safe(line), file=sys.stderr, flush=True)


def escape_warnings() -> None:
    """Show every warning's text made safe for a terminal: a library's warning may quote a
    class name (matplotlib's "Glyph 27 (\\x1b) missing from font" does, raw). Installed once,
    however often it is called."""
    plain = warnings.formatwarning
    if getattr(plain, "terminal_safe", False):
        return

    def safe(*args: Any, **kwargs: Any) -> str:
        return terminal_lines(plain(*args, **kwargs))

    safe.terminal_safe = True  # type: ignore[attr-defined]
    warnings.formatwarning = safe


def print_json(obj: Any) -> None:
    print(json.dumps(obj, separators=(",", ":")))


def add_sweep_options(
    parser: argparse.ArgumentParser, *, runs: int, max_queries: int | None
) -> None:
    """What every sweep takes: model, output folder, classes, runs, seed, budget (unless
    ``max_queries`` is None: a sweep whose budget is set otherwise), output form. The classes
    default to every class of the model (:func:`sweep_classes`); ``--digits`` is their older
    name, kept for the command lines written when the default was 0-9."""
    parser.add_argument(
        "--model",
        required=True,
        type=Path,
        help="model file: identikit checkpoint, TorchScript or ONNX",
    )
    parser.add_argument("--out", required=True, type=output_path, help="output folder")
    parser.add_argument(
        "--allow-engine-change",
        action="store_true",
        help="resume a sweep with another scoring engine, chunk size or device than it began "
        "with (results may then differ in the last bits; every engine is recorded)",
    )
    parser.add_argument(
        "--classes",
        "--digits",
        dest="classes",
        default=None,
        metavar="CLASSES",
        help="classes to search, e.g. 0-9, 3,7, 0-2,7 or all (default: all the model's "
        "classes; --digits is the older name)",
    )
    parser.add_argument(
        "--runs", type=int, default=runs, help="runs per class (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sweep seed (default: %(default)s)")
    if max_queries is not None:
        parser.add_argument(
            "--max-queries",
            type=int,
            default=max_queries,
            help="model queries allowed per run (default: %(default)s)",
        )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_cluster_options(parser)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where a sweep runs: here, or as Ray tasks (``--cluster ray``)."""
    group = parser.add_argument_group("cluster (needs identikit[ray])")
    group.add_argument(
        "--cluster",
        choices=("ray",),
        default=None,
        help="run the sweep as Ray tasks: a Ray started on this machine, or --address's",
    )
    group.add_argument(
        "--address", default=None, help="join this Ray cluster (ray start --head prints it)"
    )
    group.add_argument(
        "--cpus-per-task",
        type=positive_int,
        default=1,
        help="cores (PyTorch threads) of each shard's task (default: %(default)s)",
    )
    group.add_argument(
        "--gpus-per-task",
        type=share,
        default=GPU_SHARE,
        help="with --device cuda: share of a GPU each task asks Ray for, so that several "
        "shards share a card (default: %(default)s)",
    )
    group.add_argument(
        "--retries",
        type=non_negative_int,
        default=RETRIES,
        help="times Ray runs again a shard whose worker died (default: %(default)s)",
    )
    group.add_argument(
        "--shard-runs",
        type=positive_int,
        default=None,
        help="runs per shard (default: sized to the cluster, several shards per worker)",
    )


def sweep_classes(args: argparse.Namespace, config: SweepConfig) -> SweepConfig:
    """``config`` (made from a sweep command's options) with its classes known before the
    model is loaded for scoring, whose engine choice weighs the sweep's budget: every class
    of the model where ``--classes`` names none (as many as ``--num-classes`` says, else as
    the model returns, read from a first, unmeasured load); the classes named otherwise."""
    if config.resolved:
        return config
    return config.for_classes(args.num_classes or model_classes(args))


def model_classes(args: argparse.Namespace) -> int:
    """The number of classes ``--model`` returns (see :func:`model_probe`)."""
    return model_probe(args).num_classes


def model_probe(args: argparse.Namespace) -> Classifier:
    """``--model`` as the command's options load it, without measuring engines or saying
    anything (the load that scores says what it finds): its shape and classes."""
    options = load_options(args)
    return load_classifier(
        args.model,
        device=options.device,
        preprocessing=options.preprocessing,
        expect=options.expect,
        engine=EngineOptions(chunk_size=args.chunk_size),  # backend None: nothing measured
        trust_code=options.trust_code,
    )


def announce_size(
    config: SweepConfig, classifier: Classifier, cluster: RayCluster | None, *, sweeps: int = 1
) -> None:
    """Say a large sweep's size and budget before it starts (see
    :func:`identikit.sweeps.sweep.size_line`), with the longest it can take at the rate the
    engine was measured at here (none on a cluster, whose workers score at their own)."""
    rate = None if cluster is not None else classifier.choice.images_per_s
    line = size_line(config, rate, sweeps=sweeps)
    if line is not None:
        say(f"{classifier.name}: {line}")


def cluster_of(args: argparse.Namespace, work: int | None = None) -> RayCluster | None:
    """The cluster a sweep command's options ask for, with the model file its workers load
    (for ``work`` images ahead); None for a sweep on this machine."""
    if args.cluster is None:
        if args.address is not None:
            raise IdentikitError("--address joins a Ray cluster: add --cluster ray")
        return None
    return RayCluster(
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
        retries=args.retries,
        shard_runs=args.shard_runs,
        source=ModelSource.read(args.model, load_options(args, work)),
    )


# Argument types: argparse turns their ArgumentTypeError into "argument --NAME: message", one
# line through Parser.error. float() accepts "nan" and "inf", and nan compares false with every
# bound, so each float type asks for a finite number first.


def finite_float(text: str) -> float:
    """A finite number: not nan, not inf."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, seconds between saves)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def channel_values(text: str) -> Values:
    """One finite number, or one per channel separated by commas (``0.485,0.456,0.406``)."""
    values = tuple(finite_float(part) for part in text.split(","))
    return values[0] if len(values) == 1 else values


def positive_channel_values(text: str) -> Values:
    """As :func:`channel_values`, each > 0 (a standard deviation)."""
    values = tuple(positive_float(part) for part in text.split(","))
    return values[0] if len(values) == 1 else values


def image_shape(text: str) -> ImageShape:
    """An image shape written C,H,W (``3,32,32``): three whole numbers >= 1."""
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three whole numbers), got {text!r}")
    shape = ImageShape(*(_int_at_least(part, 1) for part in parts))
    try:  # before a model is read: a probe would allocate images of this shape
        return shape.check_size("images")
    except IdentikitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def chunk_size(text: str) -> int:
    """Images per forward pass: 1 to MAX_CHUNK. A larger one would be tried for every batch
    (``--chunk-size 10^12`` ran a whole sweep, then its own results.json was refused as edited,
    which records chunk sizes up to the same bound)."""
    value = _int_at_least(text, 1)
    if value > MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CHUNK:,}, got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence to reach)."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number inside (0, 1), got {text!r}")
    return value


def share(text: str) -> float:
    """A number in (0, 1]: a share of one device."""
    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (epochs, a batch size, samples, patience)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (retries)."""
    return _int_at_least(text, 0)


def class_names(text: str) -> tuple[str, ...]:
    """Class names: ``a,b,c``, or ``@FILE`` with one name a line (names with commas in them,
    as many of ImageNet's have, and 1,000 of them, are better kept in a file). An empty name
    is refused: a table would show nothing for that class."""
    if text.startswith("@"):
        lines = _name_lines(Path(text[1:]))
        names, where = tuple(line.rstrip("\r") for line in lines), f"{text[1:]} line"
    else:
        names, where = tuple(text.split(",")), "name"
    empty = [i for i, name in enumerate(names, 1) if not name.strip()]
    if empty:
        raise argparse.ArgumentTypeError(f"{where} {empty[0]} is empty; every class needs a name")
    try:
        CLASSES.check(len(names), "--class-names")
    except IdentikitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _name_lines(path: Path) -> list[str]:
    """The lines of a class-names file (UTF-8, at most a few MB; a last line may end without a
    newline, and one final newline is not an empty name)."""
    try:
        data = read_regular(path, limit=NAMES_BYTES)
        text = data.decode("utf-8")
    except IdentikitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{path} is not UTF-8 text") from None
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def class_count(text: str) -> int:
    """A whole number >= 2: a classifier chooses between at least two classes."""
    return _int_at_least(text, 2)

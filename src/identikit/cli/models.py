"""Commands about data and models: data, train, evaluate, export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from identikit.base.errors import IdentikitError
from identikit.base.limits import MODEL_BYTES
from identikit.base.safe_files import read_regular
from identikit.base.text import terminal_safe
from identikit.classifier import load_classifier
from identikit.classifier.classifier import Classifier
from identikit.classifier.loading import model_format
from identikit.cli.options import (
    add_convention_options,
    add_data_options,
    add_device,
    add_input_shape,
    add_model_options,
    class_names,
    conventions,
    make_classifier,
    output_path,
    positive_float,
    positive_int,
    print_json,
    say,
)
from identikit.data.datasets import SPLITS, ensure_files, load_dataset, refetch_files
from identikit.data.image_set import ImageSet
from identikit.data.images import load_images
from identikit.engines.options import EngineOptions
from identikit.engines.tuning import REPAY_IMAGES
from identikit.models import ARCHITECTURES
from identikit.models.checkpoint import load_checkpoint
from identikit.models.export import (
    Source,
    export_converted,
    export_model,
    name_classes,
    torchscript_graph,
)
from identikit.models.info import Expected
from identikit.models.preprocessing import values_text
from identikit.training.evaluation import Scored, evaluate_classifier
from identikit.training.trainer import TrainSpec, train

# What a file in identikit's own convention takes and returns (``export`` writes one).
IDENTIKIT_CONVENTION = (
    "images N x C x H x W, pixels in [0, 1], logits out: every command uses it without "
    "convention flags"
)


def cmd_data(args: argparse.Namespace) -> int:
    if args.refetch:
        refetch_files(args.dataset, args.root)
    paths = ensure_files(args.dataset, args.root)
    for split in SPLITS:
        images, labels = load_dataset(args.dataset, split, args.root)
        classes = len(set(labels.tolist()))
        print(f"{terminal_safe(args.dataset)} {split}: {len(images)} images, {classes} classes")
    folder = sorted({str(p.parent) for p in paths.values()})
    print(f"files in {terminal_safe(', '.join(folder))} (checksums verified)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        print(terminal_safe(line), file=sys.stderr if args.json else sys.stdout)

    spec = TrainSpec(
        args.model,
        dataset=args.dataset,
        root=args.root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        precision=args.precision,
        seed=args.seed,
        device=args.device,
    )
    result = train(spec, out=args.out, progress=not args.no_progress, log=log)
    summary = {
        "model": result.architecture,
        "test_accuracy": result.test_accuracy,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 2),
        "seed": result.seed,
        "batch_size": result.config.batch_size,
        "lr": result.config.lr,
        "precision": result.config.precision,
        "out": str(args.out),
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"{result.architecture}: test accuracy {result.test_accuracy:.2%} after "
            f"{result.epochs} epochs in {result.seconds:.0f} s; saved {terminal_safe(args.out)}"
        )
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    classifier = make_classifier(args, args.work)
    choice = classifier.choice
    if args.json:
        print_json({"model": classifier.name, **choice.record(), "how": choice.how})
        return 0
    print(f"{'engine@chunk':28s} images/s")
    for trial, rate in sorted(choice.trials().items(), key=lambda item: -item[1]):
        print(f"{trial.label:28s} {rate:10,.0f}")
    for name, why in choice.skipped.items():
        print(f"{name:28s} not used: {why}")
    for name, why in choice.passed_over.items():
        print(f"{name:28s} not chosen: {why}")
    print(f"chosen: {choice.summary()}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    classifier = make_classifier(args)
    data = load_images(args.dataset, args.root)
    images, labels = data.split("test")
    if classifier.num_classes != data.classes:
        raise IdentikitError(
            f"{args.model} has {classifier.num_classes} classes, {args.dataset} has {data.classes}"
        )
    if classifier.info.input_shape != data.shape:
        raise IdentikitError(
            f"{args.model} takes images of {classifier.info.input_shape}, {args.dataset} "
            f"has {data.shape}"
        )
    result = evaluate_classifier(classifier, images, labels)
    scored = Scored.of(data)
    names = _class_names(classifier, data)
    if args.json:
        print_json(
            {
                "model": classifier.name,
                "dataset": args.dataset,
                **scored.record(),
                "accuracy": result.accuracy,
                "class_names": names,
                "per_class": result.per_class,
                "confusion": result.confusion,
            }
        )
        return 0
    model, dataset = terminal_safe(args.model), terminal_safe(args.dataset)
    print(f"{model} on {dataset}: accuracy {result.accuracy:.2%} on {scored.text()}")
    print("confusion: rows are the true class, columns the predicted class")
    # Escaped before they are cut to five characters: what is shown is safe, if shortened.
    shown = [terminal_safe(name) for name in names]
    print("true   accuracy   " + " ".join(f"{n[:5]:>5}" for n in shown))
    for name, accuracy, row in zip(shown, result.per_class, result.confusion, strict=True):
        print(f"{name[:5]:>5}  {accuracy:8.2%}   " + " ".join(f"{v:5d}" for v in row))
    return 0


def _class_names(classifier: Classifier, data: ImageSet) -> list[str]:
    """The names of the confusion table's classes: ``--class-names`` or the names the model
    file records, else the dataset's (its ``class_names``, or the numbers). A model without
    names is given the numbers when it is probed, which must not hide the dataset's names."""
    numbers = [str(c) for c in range(classifier.num_classes)]
    named = classifier.class_names
    return named if named and named != numbers else list(data.class_names)


def cmd_export(args: argparse.Namespace) -> int:
    file = read_regular(args.model, limit=MODEL_BYTES)
    if model_format(args.model, file) == "checkpoint":
        return _export_checkpoint(args)
    return _export_converted(args)


def _export_checkpoint(args: argparse.Namespace) -> int:
    """A checkpoint (identikit's convention already) written to take the inputs the
    convention flags describe: for other tools, with the flags that load it back."""
    # The conventions first: a wrong --std costs no reading of the checkpoint.
    preprocessing = conventions(args, outputs="logits")
    if args.input_shape is not None:
        recorded = load_checkpoint(args.model)[1]["input_shape"]
        if recorded != args.input_shape:
            raise IdentikitError(
                f"{args.model} takes images of {recorded} (its checkpoint records it), "
                f"not --input-shape {args.input_shape}"
            )
    export_model(
        args.model,  # exported for the image shape the checkpoint records
        args.out,
        fmt=args.format,
        preprocessing=preprocessing,
        flatten=args.flatten,
        fixed_batch=args.fixed_batch,
    )
    names = _names_option(args)
    if names and args.format == "onnx":
        name_classes(args.out, names)  # in place of the checkpoint's own
    out = terminal_safe(args.out)
    if preprocessing.is_identity and preprocessing.outputs == "logits" and not args.flatten:
        print(f"wrote {out} ({args.format}), in identikit's convention: {IDENTIKIT_CONVENTION}")
        return 0
    flags = (
        f"--input-range {args.input_range} --mean {values_text(preprocessing.mean)} "
        f"--std {values_text(preprocessing.std)} --layout {preprocessing.layout or 'nchw'} "
        f"--outputs {preprocessing.outputs}"
    )
    print(f"wrote {out} ({args.format}); use it with: {flags}")
    return 0


def _export_converted(args: argparse.Namespace) -> int:
    """A TorchScript or ONNX model, whose conventions the flags describe, written in
    identikit's convention: every command then uses it without flags."""
    if args.flatten:
        raise IdentikitError(
            "--flatten is for exporting a checkpoint: a TorchScript or ONNX model is written "
            "in identikit's convention, images N x C x H x W"
        )
    if args.format != "onnx":
        raise IdentikitError(
            "--format torchscript is for exporting a checkpoint: a TorchScript or ONNX model is "
            "written as ONNX, in identikit's convention"
        )
    names = _names_option(args)
    classifier = load_classifier(
        args.model,
        device="cpu",  # the exporter traces on the CPU
        preprocessing=conventions(args),
        expect=Expected(None, tuple(names) if names else None, args.input_shape),
        engine=EngineOptions(log=say),  # no backend: nothing measured
        trust_code=args.trust_code,
    )
    model = classifier.model
    if classifier.module is not None:  # TorchScript, exported alone first
        dims = classifier.preprocessing.model_dims(classifier.info.input_shape)
        graph = torchscript_graph(classifier.module, dims)
    else:  # ONNX: its own graph
        graph = read_regular(args.model, limit=MODEL_BYTES)
    source = Source(
        graph=graph,
        conventions=classifier.preprocessing,
        outputs=classifier.outputs,
        shape=classifier.info.input_shape,
        name=classifier.name,
        flat=bool(getattr(model, "flat", False)),
        fixed_batch=args.fixed_batch or getattr(model, "fixed_batch", None) == 1,
        sha256=classifier.sha256,
    )
    named = classifier.class_names
    export_converted(source, args.out, class_names=names or named or None)
    what = source.conventions.describe()
    what += "" if source.conventions.outputs else f"; outputs {source.outputs}"
    print(
        f"wrote {terminal_safe(args.out)} (onnx) from {terminal_safe(classifier.name)} "
        f"({terminal_safe(what)}), {source.shape} images, in identikit's convention: "
        f"{IDENTIKIT_CONVENTION}"
    )
    return 0


def _names_option(args: argparse.Namespace) -> list[str] | None:
    """``--class-names`` as a list (None where not given)."""
    return list(args.class_names) if args.class_names else None


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's commands to the parser."""
    for add in (_add_data, _add_train, _add_evaluate, _add_backends, _add_export):
        add(commands, common)


def _add_data(commands: Any, common: argparse.ArgumentParser) -> None:
    data = commands.add_parser("data", parents=[common], help="fetch and verify a dataset")
    add_data_options(data)
    data.add_argument(
        "--refetch",
        action="store_true",
        help="fetch the dataset's files again (e.g. after a checksum mismatch); the old ones "
        "are replaced only once the new ones are fetched and verified",
    )
    data.set_defaults(handler=cmd_data)


def _add_train(commands: Any, common: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train", parents=[common], help="train a model and save a checkpoint"
    )
    train.add_argument(
        "--model", required=True, choices=sorted(ARCHITECTURES), help="architecture to train"
    )
    train.add_argument("--out", required=True, type=output_path, help="checkpoint file to write")
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs (default: the architecture's own, softmax 5, cnn 2, or on a small dataset "
        "as many as make 900 optimisation steps, said in one line)",
    )
    train.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="batch size (default: the architecture's own, softmax 100, cnn 128)",
    )
    train.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="peak learning rate of the one-cycle schedule (default: the "
        "architecture's own, softmax 5e-3, cnn 3e-3)",
    )
    train.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16"),
        help="the arithmetic of training: bf16 trains under bfloat16 autocast, about twice as "
        "fast on CPUs with AVX-512 BF16; auto takes it where the device has it (default: the "
        "architecture's own, softmax fp32, cnn auto)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument(
        "--json", action="store_true", help="print one JSON summary as the last line of stdout"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_data_options(train, any_shape=True)
    add_device(train)
    train.set_defaults(handler=cmd_train)


def _add_evaluate(commands: Any, common: argparse.ArgumentParser) -> None:
    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="accuracy, per-class accuracy, confusion"
    )
    evaluate.add_argument(
        "--model",
        required=True,
        type=Path,
        help="model file: an identikit checkpoint, TorchScript (with --trust-code) or ONNX, "
        "with its conventions given by the options below",
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    add_data_options(evaluate, any_shape=True)
    add_device(evaluate)
    add_model_options(evaluate, precision=False)  # evaluation scores in fp32
    evaluate.set_defaults(handler=cmd_evaluate)


def _add_backends(commands: Any, common: argparse.ArgumentParser) -> None:
    backends = commands.add_parser(
        "backends",
        parents=[common],
        help="measure the scoring engines for a model on this machine; show the choice",
    )
    backends.add_argument("--model", required=True, type=Path, help="model file")
    backends.add_argument(
        "--remeasure",
        action="store_true",
        help="measure again, even when a choice is cached (a choice a sweep showed was "
        "measured on a busy machine is measured again anyway)",
    )
    backends.add_argument(
        "--work",
        type=positive_int,
        help="images the choice is for, as a sweep tells it its budget (classes x runs x "
        "--max-queries): torch.compile is taken, or even measured, only where it repays "
        f"within them (default: {REPAY_IMAGES:,})",
    )
    backends.add_argument("--json", action="store_true", help="print the choice as JSON")
    add_device(backends)
    add_model_options(backends)
    backends.set_defaults(handler=cmd_backends)


def _add_export(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export",
        parents=[common],
        help="write a model in identikit's own convention (or a checkpoint in another's)",
        description="A TorchScript or ONNX model: the convention options describe it, as for "
        "every other command's --model, and the file written takes identikit's own convention "
        f"({IDENTIKIT_CONVENTION}). "
        "An identikit checkpoint is identikit's convention already: for it the convention "
        "options describe the file to write, for other tools, and the flags that load it back "
        "are printed.",
    )
    export.add_argument(
        "--model",
        required=True,
        type=Path,
        help="an identikit checkpoint, TorchScript (with --trust-code) or ONNX",
    )
    export.add_argument(
        "--format",
        default="onnx",
        choices=("onnx", "torchscript"),
        help="onnx (recommended: loads anywhere, without running code) or torchscript (a "
        "program: identikit loads it back only with --trust-code) (default: %(default)s)",
    )
    export.add_argument("--out", required=True, type=output_path, help="file to write")
    _add_export_conventions(export)
    export.add_argument(
        "--trust-code",
        action="store_true",
        help="allow reading a TorchScript model: it is a program and runs with your "
        "permissions (never for a file you did not make or do not trust)",
    )
    export.add_argument(
        "--flatten",
        action="store_true",
        help="take flattened images, inputs of shape (N, C x H x W) (a checkpoint's file only)",
    )
    export.add_argument(
        "--fixed-batch",
        action="store_true",
        help="fix the batch size to 1 (ONNX), as some exporters do",
    )
    export.set_defaults(handler=cmd_export)


def _add_export_conventions(export: argparse.ArgumentParser) -> None:
    """The conventions of ``export``: of the model read, or of a checkpoint's file."""
    group = export.add_argument_group(
        "conventions: of the TorchScript or ONNX model read; of the file written from a checkpoint"
    )
    add_convention_options(
        group,
        outputs_default="detected for a model read; logits for a checkpoint's file",
        layout_default="an ONNX model's own where its input says, else nchw",
    )
    add_input_shape(group)
    group.add_argument(
        "--class-names",
        type=class_names,
        default=None,
        metavar="A,B,...|@FILE",
        help="class names, comma-separated or @FILE with one name a line, recorded in the "
        "ONNX file's metadata (default: the model's own, where it has them)",
    )

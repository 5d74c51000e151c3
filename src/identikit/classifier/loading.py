"""Loading a model file (identikit checkpoint, TorchScript or ONNX) as a Classifier.

The file is read once: its hash (recorded in results) is the hash of the very bytes the model is
built from. What the file says about the model (its architecture and card, the shape of its
input images, the number and names of the classes a checkpoint declares, an ONNX input's
static dimensions and layout) goes into its :class:`~identikit.models.info.ModelInfo`; what the
user says (``Expected.input_shape``, the CLI's ``--input-shape``) must agree with it. A
TorchScript file says nothing of its shape: the user's, else MNIST's. TorchScript files are
programs, so they load only with ``trust_code`` (the CLI's ``--trust-code``).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from identikit.base.arguments import path_argument
from identikit.base.device import resolve_device
from identikit.base.errors import IdentikitError, first_line
from identikit.base.limits import MODEL_BYTES
from identikit.base.safe_files import display_name, read_regular
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier
from identikit.classifier.engine_choice import Model
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines.options import EngineOptions
from identikit.models.checkpoint import load_checkpoint
from identikit.models.info import Expected, ModelInfo
from identikit.models.onnx_model import OnnxModel, dims_text, onnx_input
from identikit.models.preprocessing import Preprocessing

TORCHSCRIPT_WARNING = (
    "is TorchScript: a program, which runs with your permissions when it is loaded"
)


def model_format(path: Path, data: bytes) -> str:
    """``checkpoint``, ``torchscript`` or ``onnx``, from the file's content ``data``."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            names = []
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "checkpoint"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    raise IdentikitError(
        f"{path}: not an identikit checkpoint, a TorchScript file or an ONNX (.onnx) model"
    )


def load_classifier(
    path: str | os.PathLike[str],
    *,
    device: str = "auto",
    preprocessing: Preprocessing | None = None,
    expect: Expected | None = None,
    engine: EngineOptions | None = None,
    trust_code: bool = False,
) -> Classifier:
    """A Classifier for a model file: identikit checkpoint, TorchScript or ONNX.

    ``preprocessing`` gives the model's conventions (input range, normalisation, layout, kind
    of outputs; the kind detected when not given, the layout read from an ONNX input), ``expect``
    the classes it must return and the shape of its images, ``engine`` how its scoring engines
    are chosen; ``engine.log`` is told when a TorchScript file is loaded and when an ONNX
    input is read as channels last.
    """
    file = path_argument(path, "model")  # None or "" named in one line, not a TypeError
    data = read_regular(file, limit=MODEL_BYTES)
    options = engine or EngineOptions()
    expected = expect or Expected()
    info = ModelInfo(
        name=display_name(file),
        sha256=hashlib.sha256(data).hexdigest(),
        classes=expected.classes,
        class_names=expected.class_names,
        preprocessing=preprocessing or Preprocessing(),
        input_shape=expected.input_shape or MNIST_SHAPE,
    )
    kind = model_format(file, data)
    torch_device = resolve_device(device)
    model: Model
    if kind == "checkpoint":
        model, info = _checkpoint(file, data, info, given=expected.input_shape)
    elif kind == "torchscript":
        model = _torchscript(
            file, data, info.name, torch_device, trust_code=trust_code, options=options
        )
        info = replace(info, card={"architecture": "TorchScript"})
    else:
        model, info = _onnx(file, data, info, given=expected.input_shape, options=options)
        torch_device = torch.device("cpu")  # ONNX Runtime's CPU provider
    if info.preprocessing.layout is None:
        info = replace(info, preprocessing=replace(info.preprocessing, layout="nchw"))
    return Classifier(model, info, device=torch_device, engine=options)


def _onnx(
    file: Path, data: bytes, info: ModelInfo, *, given: ImageShape | None, options: EngineOptions
) -> tuple[OnnxModel, ModelInfo]:
    """The ONNX model, and ``info`` with the shape and layout its input says; the user is
    told when the input is read as channels last without being told so."""
    model = OnnxModel(file, data=data)
    told = info.preprocessing.layout
    shape, layout = onnx_input(info.name, model.input_dims, given=given, layout=told)
    preprocessing = replace(info.preprocessing, layout=layout)
    info.preprocessing.check(shape)  # before the input is checked: names the option at fault
    model.expect(ImageShape.of(preprocessing.model_dims(shape)))
    if told is None and layout == "nhwc":
        options.tell(
            f"{info.name}: input is NHWC ({dims_text(model.input_dims)}), read as layout nhwc "
            "(set --layout nchw to override)"
        )
    card = {"architecture": "ONNX"}
    # --class-names wins over the names the file records (and spares reading them).
    names = info.class_names or model.class_names
    return model, replace(
        info, input_shape=shape, preprocessing=preprocessing, card=card, class_names=names
    )


def _checkpoint(
    file: Path, data: bytes, info: ModelInfo, *, given: ImageShape | None
) -> tuple[torch.nn.Module, ModelInfo]:
    """The checkpoint's model, and ``info`` with what the checkpoint records: its shape (which
    ``given`` must be, where given), classes, class names and card."""
    if info.preprocessing.channels_last:
        raise IdentikitError(
            f"{info.name} is an identikit checkpoint, whose models take images (N, C, H, W): "
            "--layout nhwc is for TorchScript and ONNX models"
        )
    model, meta = load_checkpoint(file, data=data)
    recorded: ImageShape = meta["input_shape"]
    if given is not None and given != recorded:
        raise IdentikitError(
            f"{info.name} takes images of {recorded} (its checkpoint records it), "
            f"not --input-shape {given}"
        )
    card: dict[str, Any] = {
        "architecture": meta["architecture"],
        "parameters": sum(p.numel() for p in model.parameters()),
        **{k: meta[k] for k in ("test_accuracy", "epochs", "seed") if k in meta},
    }
    classes = int(meta["num_classes"]) if info.classes is None else info.classes
    names = info.class_names or _recorded_names(meta.get("class_names"), int(meta["num_classes"]))
    dataset = meta.get("dataset")
    return model, replace(
        info,
        classes=classes,
        class_names=names,
        input_shape=recorded,
        card=card,
        trained_on=dataset if isinstance(dataset, str) and dataset else None,
    )


def _recorded_names(names: Any, classes: int) -> tuple[str, ...] | None:
    """The class names a checkpoint records (training writes the dataset's), where they are
    one text per class; None otherwise (the numbers are shown instead)."""
    if not (isinstance(names, list | tuple) and len(names) == classes):
        return None
    return tuple(names) if all(isinstance(n, str) and n for n in names) else None


def _torchscript(
    file: Path,
    data: bytes,
    name: str,
    device: torch.device,
    *,
    trust_code: bool,
    options: EngineOptions,
) -> Model:
    """The TorchScript program in ``data``, loaded only where the user trusts its code."""
    if not trust_code:
        raise IdentikitError(
            f"{name} {TORCHSCRIPT_WARNING}; identikit loads it only if you pass "
            "--trust-code (never for a file you did not make or do not trust)"
        )
    options.tell(
        f"{name}: loading TorchScript, whose code runs with your permissions (--trust-code)"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated,
            # but it is what many users' models come as.
            model: Model = torch.jit.load(io.BytesIO(data), map_location=device)  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError, OSError) as exc:
        raise IdentikitError(f"{file}: unreadable TorchScript ({first_line(exc)})") from None
    return model

"""Where a Classifier's model runs, and which engines score it.

:func:`place` puts the model on its device (PyTorch modules in channels_last layout on CPUs,
whose convolutions run that about 1.5x faster). :func:`choose_engines` then gives the
Classifier its two scorers: the float32 one that every recorded confidence comes from, and the
one that ranks a search's candidates at the chosen precision (the same one in fp32). Without a
backend in the :class:`~identikit.engines.options.EngineOptions` the default engine is taken
without measuring; with one, the tuner (:func:`identikit.engines.tuning.choose`) measures or
reads the cached choice, given a :class:`~identikit.engines.target.Target` built here from the
model, its description (probe images of its input shape, its preprocessing and outputs) and the
options' cache folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier.probe import probe_pixels
from identikit.engines.channels_last import CHANNELS_LAST
from identikit.engines.choices import Choice
from identikit.engines.chunks import fit_chunk
from identikit.engines.eager import EAGER
from identikit.engines.options import EngineOptions
from identikit.engines.precision import check_precision
from identikit.engines.quantize import calibration_pixels
from identikit.engines.scorers import Scorer, module_digest
from identikit.engines.target import Target
from identikit.engines.torch_engines import TorchRecipe, torch_scorer
from identikit.engines.tuning import choose
from identikit.models.info import ModelInfo
from identikit.models.preprocessing import to_log_probabilities

# Images per forward pass. On a 2-core CPU the tutorial CNN scores fastest at about 128 images
# per batch in channels_last layout (6,400 images/s, against 4,000 at 500: larger batches spill
# the caches); GPUs want thousands.
CPU_CHUNK = 128
CUDA_CHUNK = 8192
# ONNX Runtime, unlike PyTorch's CPU convolutions, gains from batches of hundreds.
ONNX_CHUNK = 512
# Probe images the tuner checks and times engines with.
TUNING_PROBES = 62

Model = nn.Module | Callable[[torch.Tensor], torch.Tensor]

# What PyTorch warns, once per process, when identikit moves a TorchScript module (to a
# device, to channels_last, or a copy of it to an engine): Module._apply reads each
# parameter's .grad, and a scripted module's parameters are not leaves to it. The warning is
# about identikit's own move, not about the user's model, so it is silenced there and only there.
_NON_LEAF_GRAD = r"The \.grad attribute of a Tensor that is not a leaf Tensor is being accessed"


@contextlib.contextmanager
def _quiet_module_moves() -> Iterator[None]:
    """Silence PyTorch's non-leaf ``.grad`` warning (and nothing else) while modules move."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NON_LEAF_GRAD, category=UserWarning)
        yield


@dataclass(frozen=True)
class PlacedModel:
    """The model as given, on its device.

    ``forward`` runs it: model inputs -> outputs, as the model computes them (the reference
    every engine is checked against, and what gradients flow through). ``module`` is the same
    model where it is a PyTorch module (None for an ONNX model): engines are built from copies
    of it.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module | None
    device: torch.device


def place(model: Model, device: torch.device) -> PlacedModel:
    """``model`` on ``device``, in eval mode (channels_last on CPUs)."""
    with _quiet_module_moves():
        module = model.to(device).eval() if isinstance(model, nn.Module) else None
    if module is not None and device.type == "cpu":
        # NHWC convolutions are about 1.5x faster on CPU; layers without 4-D weights ignore it.
        with contextlib.suppress(RuntimeError, AttributeError), _quiet_module_moves():
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return PlacedModel(module or model, module, device)


def check_options(placed: PlacedModel, options: EngineOptions, name: str) -> None:
    """Refuse, before the model is probed, a precision its device or engine lacks."""
    check_precision(options.precision, placed.device)
    if placed.module is None and options.precision == "bf16":
        raise IdentikitError(f"--precision bf16: ONNX Runtime scores {name} in fp32 or int8")


@dataclass(frozen=True)
class Engines:
    """A Classifier's scorers: ``exact`` in float32 (its log-probabilities), ``ranking`` at the
    chosen precision (its scores; the same scorer in fp32), and how ``ranking`` was chosen."""

    exact: Scorer
    ranking: Scorer
    choice: Choice


def choose_engines(placed: PlacedModel, info: ModelInfo, options: EngineOptions) -> Engines:
    """The scorers for the probed model ``info`` describes, as ``options`` ask."""
    default = _default_scorer(placed, options.chunk_size, info.input_shape)
    with _quiet_module_moves():  # engines are built on copies of the module
        ranking, choice = _ranking_scorer(placed, info, options, default)
    return Engines(ranking if options.precision == "fp32" else default, ranking, choice)


def _torch_default(device: torch.device) -> tuple[TorchRecipe, int]:
    """The PyTorch engine a module runs on without measuring, and its chunk size: eager on a
    GPU, channels_last elsewhere (as :func:`place` left the module)."""
    return (EAGER, CUDA_CHUNK) if device.type == "cuda" else (CHANNELS_LAST, CPU_CHUNK)


def _default_scorer(placed: PlacedModel, chunk_size: int | None, shape: ImageShape) -> Scorer:
    """The model as given, in float32: ONNX Runtime for an ONNX model, else the PyTorch engine
    of :func:`_torch_default`."""
    if placed.module is None:
        backend, chunk = "onnx", ONNX_CHUNK
    else:
        recipe, chunk = _torch_default(placed.device)
        backend = recipe.name
    # The defaults are MNIST's: fewer images of a larger shape make a chunk.
    chunk = fit_chunk(chunk, shape, placed.device)
    return Scorer(backend, "fp32", chunk_size or chunk, torch.get_num_threads(), placed.forward)


def _ranking_scorer(
    placed: PlacedModel, info: ModelInfo, options: EngineOptions, default: Scorer
) -> tuple[Scorer, Choice]:
    precision = options.precision
    if options.backend is None and precision == "int8":  # int8 runs on ONNX Runtime
        options = dataclasses.replace(
            options,
            backend="onnx",
            chunk_size=options.chunk_size or fit_chunk(ONNX_CHUNK, info.input_shape, placed.device),
        )
    if options.backend is not None:
        return choose(tuning_target(placed, info, options), options)
    scorer = default
    if precision != "fp32":
        assert placed.module is not None  # bf16 is refused for ONNX models before
        scorer = torch_scorer(
            placed.module,
            _torch_default(placed.device)[0],
            precision=precision,
            device=placed.device,
            chunk_size=default.chunk_size,
            threads=default.threads,
        )
    choice = Choice(scorer.backend, precision, scorer.chunk_size, scorer.threads, how="default")
    return scorer, choice


def tuning_target(placed: PlacedModel, info: ModelInfo, options: EngineOptions) -> Target:
    """The model as the tuner sees it: probes and calibration images in the model's input
    space, its float32 outputs to check engines against, the cache folder."""
    module, device = placed.module, placed.device
    onnx_path = getattr(placed.forward, "path", None) if module is None else None
    if module is not None:
        signature = module_digest(module, weights=False)
    else:
        signature = info.sha256 or str(onnx_path)
    pixels = probe_pixels(info.input_shape, TUNING_PROBES, seed=1).to(device)
    calibration = None
    if options.precision == "int8":
        calibration = info.preprocessing.to_model(calibration_pixels(info.input_shape).to(device))
    outputs = info.outputs
    return Target(
        module=module,
        onnx_path=Path(onnx_path) if onnx_path is not None else None,
        device=device,
        reference=_float32(placed.forward),
        probabilities=lambda out: to_log_probabilities(out, outputs).exp(),
        probes=info.preprocessing.to_model(pixels),
        signature=signature,
        cache_dir=options.cache_folder,
        calibration=calibration,
        name=info.name,
    )


def _float32(
    forward: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward``'s outputs in float32, without gradients: what engines are checked against."""

    @torch.inference_mode()
    def reference(inputs: torch.Tensor) -> torch.Tensor:
        return forward(inputs).float()

    return reference

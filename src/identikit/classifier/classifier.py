"""The Classifier: the one thing a search strategy sees of a model.

It maps pixel images in [0, 1], a batch (N, C, H, W) of the model's input shape, to class
(log-)probabilities, scores them in chunks with the engines chosen for the machine, counts
every image it scores (``queries``), so that every strategy is compared on the same meter, and
differentiates an objective of them for white-box strategies. It does nothing else: the
model's description comes from loading its file (:mod:`identikit.classifier.loading`) and
probing it (:mod:`identikit.classifier.probe`), the engines from
:mod:`identikit.classifier.engine_choice`.

Two paths: :meth:`Classifier.log_probabilities` is always float32; :meth:`Classifier.score`,
which searches use for their candidates, runs at the chosen precision (bf16 or int8), and a
search re-scores each candidate it keeps with :meth:`log_probabilities`, so every recorded
confidence is a float32 value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from identikit.base.errors import IdentikitError
from identikit.classifier.engine_choice import (
    Model,
    PlacedModel,
    check_options,
    choose_engines,
    place,
)
from identikit.classifier.probe import ProbeFailed, describe
from identikit.engines.choices import PROCESS_THREADS, Choice
from identikit.engines.options import EngineOptions
from identikit.engines.precision import ieee_fp32
from identikit.engines.scorers import Scorer
from identikit.models.batch_norm_taps import BatchNormLayer, TappedModel, tap
from identikit.models.feature_statistics import StatisticsTerm, statistics_term
from identikit.models.info import ModelInfo, batch_text
from identikit.models.one_image import OneImageAtATime
from identikit.models.onnx_model import OnnxModel
from identikit.models.preprocessing import Preprocessing, to_log_probabilities

Objective = Callable[[torch.Tensor, torch.Tensor, slice], torch.Tensor]


@dataclass(frozen=True)
class StatisticsStep:
    """What :meth:`Classifier.value_and_grad_with_statistics` gives: the objective's values
    per image (N,), without the term; the gradients (N, C, H, W) of the whole, sum of values
    minus ``weight`` x R_feature; and the term itself (detached), per group and layer."""

    values: torch.Tensor
    grads: torch.Tensor
    term: StatisticsTerm


class Classifier:
    """A model wrapped as a query-counting probability oracle over pixel images in [0, 1].

    Args:
        model: a torch module (or TorchScript module, or any callable such as an ONNX model)
            from model inputs (N, C, H, W) to outputs (N, classes). A PyTorch model that
            fails on the probe images together and runs on each alone takes a batch of 1: it
            is run one image at a time (:mod:`identikit.models.one_image`), and
            ``engine.log`` is told so.
        info: what is known about the model (name, hash, expected classes and class names,
            preprocessing, input shape, card); completed by probing it (see :attr:`info`).
        device: where to run a torch model.
        engine: how to choose the engines that score (default: PyTorch channels_last on the
            CPU, eager on a GPU, ONNX Runtime for an ONNX model, in fp32, without measuring).

    The model is held three ways, each for one job: :attr:`reference` is the model as given
    (float32, on the device; gradients flow through it), :attr:`exact_scorer` the engine that
    computes float32 log-probabilities, :attr:`ranking_scorer` the engine that ranks at the
    chosen precision (the same one in fp32).
    """

    def __init__(
        self,
        model: Model,
        info: ModelInfo | None = None,
        *,
        device: torch.device | str = "cpu",
        engine: EngineOptions | None = None,
    ) -> None:
        options = engine or EngineOptions()
        info = info or ModelInfo()
        self.device = torch.device(device)
        self.precision = options.precision
        # Every recorded confidence is float32: on a GPU, not the TF32 PyTorch allows.
        ieee_fp32(self.device)
        placed = place(model, self.device)
        check_options(placed, options, info.name)
        try:
            self.info = describe(placed.forward, info, self.device)
        except ProbeFailed as failure:
            placed, self.info = _one_image_at_a_time(placed, info, failure)
            options.tell(
                f"{self.info.name}: takes a batch of 1 only (it fails on several images at "
                "once and runs on each alone); identikit runs it one image at a time"
            )
        self.reference = placed.forward
        self.torch_module = placed.module
        self.queries = 0
        engines = choose_engines(placed, self.info, options)
        self.exact_scorer = engines.exact
        self.ranking_scorer = engines.ranking
        self.choice: Choice = engines.choice
        self._lanes: list[Classifier] | None = None
        self._tapped: TappedModel | None = None

    # --- What other layers read of the model's description -------------------------------

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def sha256(self) -> str | None:
        return self.info.sha256

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names or ())

    @property
    def preprocessing(self) -> Preprocessing:
        return self.info.preprocessing

    @property
    def outputs(self) -> str:
        """What the model returns: logits, probabilities or log-probabilities."""
        return self.info.outputs

    @property
    def detected_outputs(self) -> bool:
        """Whether :attr:`outputs` was detected rather than given."""
        return self.info.outputs_detected

    @property
    def card(self) -> dict[str, Any]:
        return self.info.card

    @property
    def one_image_at_a_time(self) -> bool:
        """Whether the model takes a batch of 1 only, and so runs one image at a time (see
        :mod:`identikit.models.one_image`)."""
        return isinstance(self.torch_module, OneImageAtATime)

    @property
    def module(self) -> nn.Module | None:
        """The PyTorch module (None for an ONNX model): :attr:`torch_module`."""
        return self.torch_module

    @property
    def model(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model as given: :attr:`reference`."""
        return self.reference

    @property
    def scorer(self) -> Scorer:
        """The engine :meth:`score` ranks with: :attr:`ranking_scorer`."""
        return self.ranking_scorer

    @property
    def chunk_size(self) -> int:
        """Images per forward pass of :meth:`score`."""
        return self.ranking_scorer.chunk_size

    @property
    def rescores(self) -> bool:
        """Whether searches must re-score kept candidates in float32 (bf16 or int8 scoring)."""
        return self.precision != "fp32"

    def lanes(self) -> list[Classifier]:
        """Copies of the classifier that each compute on one core, one per thread of the
        process's budget (:data:`~identikit.engines.choices.PROCESS_THREADS`); empty where its
        ranking engine has no one-core copy (PyTorch's engines, a GPU) or the budget is one
        thread.

        A search steps disjoint groups of runs on them side by side, each lane on a thread of
        its own. Two cores that each score their own images never wait for one another, where
        one engine on both meets the other core at every layer: ONNX Runtime scored 3 x 32 x
        32 images 5% faster as two one-thread sessions side by side than as one of two threads
        (and its outputs do not depend on its threads). A lane counts its own :attr:`queries`;
        the search adds them to the classifier's. Lanes are made once, on first use.
        """
        if self._lanes is None:
            one_core = self.ranking_scorer.one_core
            if one_core is None or self.device.type != "cpu" or PROCESS_THREADS < 2:
                self._lanes = []
            else:
                self._lanes = [self._lane(one_core()) for _ in range(PROCESS_THREADS)]
        return self._lanes

    def _lane(self, ranking: Scorer) -> Classifier:
        """This classifier ranking with ``ranking``; its float32 engine a one-core copy where
        it has one (else shared: a PyTorch module or an ONNX Runtime session may be called from
        several threads at once), no queries counted yet, and no lanes of its own."""
        lane = copy.copy(self)
        lane.ranking_scorer = ranking
        if self.exact_scorer is self.ranking_scorer:
            lane.exact_scorer = ranking
        elif self.exact_scorer.one_core is not None:
            lane.exact_scorer = self.exact_scorer.one_core()
        lane.queries = 0
        lane._lanes = []
        return lane

    # --- Scoring, counting, differentiating ----------------------------------------------

    def log_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, classes), float32, on the Classifier's device.

        Log-probabilities keep their resolution near certainty (1 - 1e-9 is still distinct from
        1 - 1e-8), where probabilities in float32 round to 1.
        """
        return self._log_probabilities(images, self.exact_scorer)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities at the chosen precision: what searches rank candidates by.

        In fp32 the same as :meth:`log_probabilities`; in bf16 (about three significant digits)
        or int8 (a quantized copy) faster and coarser, so a search re-scores what it keeps with
        :meth:`log_probabilities`.
        """
        return self._log_probabilities(images, self.ranking_scorer)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for pixel images in [0, 1]."""
        return self.log_probabilities(images).exp()

    @torch.inference_mode()
    def _log_probabilities(self, images: torch.Tensor, scorer: Scorer) -> torch.Tensor:
        shape = self.info.input_shape
        if images.dim() != 4 or tuple(images.shape[1:]) != shape.dims:
            raise IdentikitError(
                f"expected images of shape {batch_text(shape)}, got {tuple(images.shape)}"
            )
        if images.shape[0] == 0:
            return torch.zeros(0, self.num_classes, device=self.device)
        # Every PyTorch operation happens once per call, not once per chunk: between ONNX
        # Runtime's runs, a PyTorch operation wakes PyTorch's own worker threads, which then
        # spin on the cores ONNX Runtime needs (a log-softmax per chunk of 128 cost 25% of the
        # rate on 2 cores).
        inputs = self.preprocessing.to_model(images.to(self.device, torch.float32))
        size = scorer.chunk_size
        raw = torch.cat(
            [scorer(inputs[start : start + size]) for start in range(0, len(inputs), size)]
        )
        self.queries += images.shape[0]
        result = to_log_probabilities(raw.to(self.device), self.outputs)
        self._check_finite(result)
        return result

    def log_probabilities_at_any_size(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, classes) of pixel images (N, C, H, W) of any height and width,
        through the model's :meth:`differentiable` forward without gradients: a network that
        pools globally takes other sizes than its own (DeepInversion's coarse steps draw at
        half size). Each image counts as one query."""
        forward = self.differentiable()
        with torch.inference_mode():
            raw = forward(self.preprocessing.to_model(images.to(self.device, torch.float32)))
            result = to_log_probabilities(raw, self.outputs)
        self.queries += images.shape[0]
        self._check_finite(result)
        return result

    def value_and_grad(
        self, images: torch.Tensor, objective: Objective
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective values (N,) and their gradients with respect to the pixels.

        ``objective(x, log_probabilities, rows)`` gets a chunk of images (with gradients
        enabled), the model's log-probabilities for them and the chunk's rows within
        ``images``; it returns one value per image. Each image counts as one query. Only for
        models that give gradients (white-box strategies).
        """
        forward = self.differentiable()
        values, grads = [], []
        size = self.exact_scorer.chunk_size
        for start in range(0, images.shape[0], size):
            rows = slice(start, min(start + size, images.shape[0]))
            x = images[rows].detach().to(self.device, torch.float32).requires_grad_(True)
            with torch.enable_grad():
                log_probabilities = to_log_probabilities(
                    forward(self.preprocessing.to_model(x)), self.outputs
                )
                value = objective(x, log_probabilities, rows)
                (grad,) = torch.autograd.grad(value.sum(), x)
            values.append(value.detach())
            grads.append(grad)
        self.queries += images.shape[0]
        if not values:
            return torch.zeros(0, device=self.device), torch.zeros_like(images)
        result = torch.cat(values)
        self._check_finite(result)
        return result, torch.cat(grads)

    def differentiable(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """What :meth:`value_and_grad` differentiates: model inputs -> outputs, with autograd.

        A PyTorch model is :attr:`reference` itself; an ONNX model's graph is run in PyTorch
        by identikit's interpreter (read on first use, and refused in one line where it has an
        operator the interpreter does not run, or is quantized), while its scores still come
        from ONNX Runtime. Calling this before a search says at once whether gradients can be
        had.
        """
        if self.torch_module is not None:
            return self.reference
        if isinstance(self.reference, OnnxModel):
            return self.reference.differentiable()
        raise IdentikitError(f"{self.name} gives no gradients: use a black-box strategy")

    def batch_norm_layers(self) -> tuple[BatchNormLayer, ...]:
        """The model's batch-norm layers whose stored statistics
        :meth:`value_and_grad_with_statistics` matches (empty: none found; see
        :func:`~identikit.models.batch_norm_taps.layers_line` for the line to print).
        Found on first use: a TorchScript model is exported to ONNX in memory then (seconds).
        A one-line error for a model that takes a batch of 1 only (its statistics would be of
        one image at a time)."""
        return self._statistics_tap().layers

    def value_and_grad_with_statistics(
        self,
        images: torch.Tensor,
        objective: Objective,
        weight: float,
        *,
        groups: torch.Tensor | None = None,
        layer_weights: Sequence[float] | None = None,
    ) -> StatisticsStep:
        """:meth:`value_and_grad` with the model's batch-norm statistics (DeepInversion, Yin et
        al. 2020): the gradients are of sum_i objective_i - ``weight`` x R_feature, R_feature
        the statistics term of :mod:`identikit.models.feature_statistics` over the batch (or
        over each of its ``groups``, (N,) numbers 0..G-1), with ``layer_weights`` per layer
        (default: 10 for the first layer, 1 for the others).

        The objective is summed over images and the term is not, so DeepInversion's mean loss
        plus r x R_feature is ``weight`` = N x r. The whole batch goes through the model in one
        pass, never in chunks, since its statistics are of the whole batch. Gradients: a
        PyTorch module through forward pre-hooks; an ONNX model, and a TorchScript module
        (exported to ONNX once, batch norms kept), through identikit's ONNX interpreter. A
        model without batch-norm layers gives a term of 0 and :meth:`value_and_grad`'s
        gradients. Each image counts as one query.
        """
        tapped = self._statistics_tap()
        x = images.detach().to(self.device, torch.float32).requires_grad_(True)
        with torch.enable_grad():
            outputs, observed = tapped(self.preprocessing.to_model(x), groups)
            log_probabilities = to_log_probabilities(outputs, self.outputs)
            value = objective(x, log_probabilities, slice(0, x.shape[0]))
            term = statistics_term(observed, len(tapped.layers), layer_weights)
            (grad,) = torch.autograd.grad(value.sum() - weight * term.total, x)
        self.queries += images.shape[0]
        values = value.detach()
        self._check_finite(values)
        return StatisticsStep(values, grad, term.detach())

    def _statistics_tap(self) -> TappedModel:
        """The model's forward with its batch-norm statistics, made once: hooks on a PyTorch
        module; the interpreter on an ONNX model or on a TorchScript module exported to ONNX
        (PyTorch refuses hooks on TorchScript; see the module's docstring)."""
        if self.one_image_at_a_time:
            # Image by image, each layer would see one image at a time (as ObservedGraph
            # refuses an ONNX graph fixed to a batch of 1).
            raise IdentikitError(
                f"{self.name} takes a batch of 1 only, and batch-norm statistics need the whole "
                "batch in one pass: draw it with search --strategy gradient, or give a model "
                "that takes any batch"
            )
        if self._tapped is None:
            model: object = self.torch_module if self.torch_module is not None else self.reference
            example = self.preprocessing.to_model(
                torch.full((2, *self.info.input_shape.dims), 0.5, device=self.device)
            )
            self._tapped = tap(model, example, self.name)
        return self._tapped

    @property
    def gradients_by(self) -> str:
        """What computes :meth:`value_and_grad`'s gradients, in words (for the line a command
        prints before a white-box search): ``PyTorch (fp32, eager, on cpu)``, or for an ONNX
        model ``identikit's ONNX interpreter in PyTorch (fp32, on cpu)``."""
        if self.torch_module is None and isinstance(self.reference, OnnxModel):
            return f"identikit's ONNX interpreter in PyTorch (fp32, on {self.device})"
        alone = ", one image at a time" if self.one_image_at_a_time else ""
        return f"PyTorch (fp32, eager{alone}, on {self.device})"

    def _check_finite(self, values: torch.Tensor) -> None:
        if not torch.isfinite(values).all():
            raise IdentikitError(f"{self.name} returned NaN or infinite outputs")


def _one_image_at_a_time(
    placed: PlacedModel, info: ModelInfo, failure: ProbeFailed
) -> tuple[PlacedModel, ModelInfo]:
    """A PyTorch model that failed on the probe images together (``failure``), run one image at
    a time, and its description, where it runs on each probe image alone: it takes a batch of
    1. Otherwise (or for an ONNX model, whose static batch of 1 its file says) ``failure`` is
    the error."""
    if placed.module is None:
        raise failure
    alone = place(OneImageAtATime(placed.module), placed.device)
    try:
        return alone, describe(alone.forward, info, alone.device)
    except ProbeFailed:
        raise failure from None

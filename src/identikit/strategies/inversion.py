"""Model inversion for colour images: DeepInversion's recipe, drawn from the network alone.

DeepInversion (Yin et al., CVPR 2020, "Dreaming to Distill: Data-free Knowledge Transfer via
DeepInversion") draws a batch of images that a trained network assigns to chosen classes, with
the strongest prior known to need no data: the statistics of every batch-norm layer's inputs
over the batch being drawn are made to match the running means and variances the layer stored
in training (:mod:`identikit.models.feature_statistics`). Its other parts, each a setting here:

- **Parameterisation**: the image in the model's own normalised input space (``(pixels - mean)
  / std``), clamped to the valid pixel range after every step; optionally (``basis``) in the
  decorrelated colour and frequency-scaled Fourier bases of Olah, Mordvintsev & Schubert (2017),
  "Feature Visualization", Distill (:mod:`identikit.strategies.parameterisations`).
- **Transformation robustness**: each step the model sees the image rolled by a random shift of
  up to ``jitter`` pixels and, with ``flips``, mirrored left to right at random (DeepInversion;
  the jitter of Mordvintsev, Olah & Tyka 2015, "Inceptionism").
- **Image priors**: the mean squared total variation and the mean squared value of the image,
  in normalised units (DeepInversion's R_prior).
- **Adam** (Kingma & Ba 2015) with DeepInversion's betas (0.5, 0.9) and a cosine decay of the
  step size to 0 over the run's planned ``steps``.
- **Scale robustness** (``zoom``): each view is also scaled by a random factor in [1 - zoom,
  1 + zoom] about its centre, cropped or padded back to its size (Lucent's random scaling,
  Olah et al. 2017; the input diversity that makes images carry to other networks, Xie et al.
  2019, "Improving Transferability of Adversarial Examples with Input Diversity").
- **Coarse to fine** (``resolutions`` 2): the first ``coarse_share`` of the steps draw an image of
  half the size, which the model sees as it is (``coarse_input`` half: a network that pools
  globally takes it, at a quarter of the cost) for the first ``half_share`` of them, and
  upsampled to its own size after them (``full``: all of them), as a judge will see it; then
  the full size, with Adam and its cosine started afresh at each change of size
  (DeepInversion's multi-resolution ImageNet setting, 112 then 224 pixels; the octaves of
  Mordvintsev et al. 2015).

Settings left at -1 (0 for ``lr``, ``auto`` for ``basis``) are taken from the image's size
(:data:`SMALL_IMAGES`, :data:`LARGE_IMAGES`): what was measured on CIFAR-10's 32 x 32 and on
ImageNet's 224 x 224 networks (``benchmarks/real_models.py``).

The objective of run i is its target's log-probability minus its image priors; the batch's
objective is their sum minus ``bn_weight`` x N x R_feature, which is DeepInversion's mean
cross-entropy plus ``bn_weight`` x R_feature, times the batch's N images.

The statistics are those of a batch, so runs are not independent: they are drawn in fixed
batches of ``batch`` runs in the sweep's layout order (class-major, so that a batch mixes
classes as DeepInversion's do), whatever the memory or device (:meth:`Strategy.batch_runs`),
and a run's image is its last one (:attr:`Strategy.draws_to_end`). Each step spends two queries
a run: the views' forward and backward pass, and the image itself scored (a coarse step's
half-size image at its own size where the model sees it so). Reads nothing but the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from identikit.base.errors import IdentikitError, first_line
from identikit.base.shapes import ImageShape
from identikit.classifier.classifier import Classifier, Objective
from identikit.models.preprocessing import INPUT_RANGES, Preprocessing
from identikit.strategies.base import Group, SearchState, Strategy, run_generator
from identikit.strategies.parameterisations import RGB, DecorrelatedColour, Fourier
from identikit.strategies.priors import gaussian_blur
from identikit.strategies.registry import check_settings, register, require

# The bases Adam may move the image in: the image itself, or Olah et al.'s decorrelated colour
# and/or Fourier coordinates of it; ``auto``: from the image's size.
BASES = ("auto", "pixels", "colour", "fourier", "colour,fourier")
# What the model sees of a coarse step's half-size image: the image itself, or it upsampled.
COARSE_INPUTS = ("half", "full")
# Images whose shorter side is at least this are drawn coarse to fine when ``resolutions`` is
# left to the image's shape (0), and take LARGE_IMAGES' settings: 224 x 224 ImageNet images
# are, 32 x 32 CIFAR ones are not (half of 32 is too few pixels to draw a class in).
COARSE_SIDE = 128
# A jitter left to the shape rolls the image by up to 1 / JITTER_SHARE of its shorter side, and
# by at least MIN_JITTER pixels (DeepInversion's 2 on CIFAR, measured here on small images too).
JITTER_SHARE, MIN_JITTER = 16, 2
# The start: pixels uniform in [START_LOW, START_LOW + START_SPREAD], a little noise about grey.
START_LOW, START_SPREAD = 0.4, 0.2
EPSILON = 1e-8  # Adam's denominator's guard
# The largest polish blur: the 5 x 5 kernel of priors.gaussian_blur reaches 2 pixels each way,
# one standard deviation at 2; a wider Gaussian cut there would be nearly a box.
MAX_BLUR = 2.0

SMALL_IMAGES: dict[str, Any] = {
    "basis": "pixels",
    "lr": 0.1,
    "bn_weight": 0.05,
    "first_bn_weight": 5.0,
    "tv_weight": 2.5e-3,
    "l2_weight": 3e-5,
    "zoom": 0.0,
    "polish_blur": 0.0,
    "half_share": 1.0,
}
"""Settings for images shorter than COARSE_SIDE, measured on CIFAR-10's ResNet-20 and -56 (the
README's table): steps in pixels, DeepInversion's CIFAR weight for the statistics term."""

LARGE_IMAGES: dict[str, Any] = {
    "basis": "colour,fourier",
    "lr": 0.05,
    "bn_weight": 0.01,
    "first_bn_weight": 10.0,
    "tv_weight": 1e-4,
    "l2_weight": 1e-5,
    "zoom": 0.3,
    "polish_blur": 1.0,
    "half_share": 0.5,
}
"""Settings for images of at least COARSE_SIDE pixels a side, measured on ImageNet's
EfficientNet-Lite0 judged by MobileNetV2: DeepInversion's ImageNet weights (statistics 0.01,
first layer 10, total variation 1e-4, L2 1e-5), in Olah et al.'s decorrelated Fourier basis
(in pixels the same recipe drew high-frequency textures the judge named 8% of the time; in the
Fourier basis, 32%), with scale robustness; half the coarse steps seen at half size, half at
the model's own size (all at half size: 40% named; all at full size: 55%, but 19 minutes for
40 images); the polish draws a blurred image (a polish of the image itself added pixel-scale
noise that the judge reads poorly: 28% named, blurred 40%)."""


@register
@dataclass(frozen=True, kw_only=True)
class Inversion(Strategy):
    """DeepInversion: Adam on the images with the model's batch-norm statistics, jitter, flips,
    total variation and L2, in fixed batches of runs.

    Settings marked "from the size" take :data:`SMALL_IMAGES`' or :data:`LARGE_IMAGES`' value
    where left at their placeholder.

    Args:
        steps: the run's planned steps, over which the step size decays (default 300;
            ``identikit reconstruct`` sets it to the sweep's steps).
        batch: runs drawn together, whose batch-norm statistics are matched as one batch, in
            the sweep's layout order (default 0: every run of the sweep).
        lr: Adam's step size in the basis's units (0, the default: from the size).
        beta1, beta2: Adam's moment decay rates (defaults 0.5, 0.9, DeepInversion's).
        bn_weight: the weight of the statistics term against the mean objective (-1, the
            default: from the size).
        first_bn_weight: the first batch-norm layer's weight within the term, the others'
            being 1 (-1: from the size; that layer sees the pixels' colours).
        tv_weight: weight of the mean squared total variation (-1: from the size).
        l2_weight: weight of the mean squared value (-1: from the size).
        jitter: largest random roll, in pixels, of the image each step; -1 (default): from
            the image's shape, a sixteenth of its shorter side and at least 2 (2 on CIFAR's
            32 x 32, as DeepInversion's CIFAR code; 14 on ImageNet's 224, where theirs is 30
            over thousands of steps). Coarse steps roll their half-size image by half as much.
        flips: mirror the image left to right at random each step (default true).
        zoom: scale each view by a random factor in [1 - zoom, 1 + zoom] (0: none; -1, the
            default: from the size).
        basis: what Adam moves: ``pixels`` (the normalised image), ``colour``, ``fourier`` or
            ``colour,fourier``; ``auto`` (default): from the size.
        resolutions: 1 (full size only) or 2 (half size, then full); 0 (default): from the
            image's shape, 2 for images of at least 128 pixels a side.
        coarse_share: the share of the steps drawn at half size when ``resolutions`` is 2
            (default 0.85: every step before the polish; never the polish's, which are at
            full size).
        coarse_input: what the model sees of a half-size image: ``half`` (the image itself,
            default, for the first ``half_share`` of the coarse steps) or ``full`` (upsampled
            to the model's size, for a model that takes only its own size).
        half_share: with ``coarse_input`` half, the share of the coarse steps, the first, in
            which the model sees the half-size image as it is; in the rest it sees it
            upsampled, as the judge will see it, at four times the cost (-1, the default: from
            the size).
        polish_share: the share of the steps, at the end, that polish: the model sees the
            image itself (no roll, no flip) and only the target's log-probability counts (no
            statistics term, no priors), so that the model is sure of the image as drawn
            (default 0.15; 0: none). Without it 2 of 100 ResNet-56 runs ended at 0.97-0.98.
        polish_blur: the polish moves an image whose blur, by a Gaussian of this standard
            deviation in pixels, is the run's image, so that the polish cannot add detail finer
            than the blur (0: none, the image itself; -1, the default: from the size).
    """

    name = "invert"
    source = (
        "DeepInversion (Yin et al. 2020); Olah et al. (2017), Feature Visualization; "
        "Mordvintsev et al. (2015), Inceptionism"
    )
    white_box = True
    draws_to_end = True
    steps: int = 300
    batch: int = 0
    lr: float = 0.0
    beta1: float = 0.5
    beta2: float = 0.9
    bn_weight: float = -1.0
    first_bn_weight: float = -1.0
    tv_weight: float = -1.0
    l2_weight: float = -1.0
    jitter: int = -1
    flips: bool = True
    zoom: float = -1.0
    basis: str = "auto"
    resolutions: int = 0
    coarse_share: float = 0.85
    coarse_input: str = "half"
    half_share: float = -1.0
    polish_share: float = 0.15
    polish_blur: float = -1.0

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "steps", self.steps >= 1, "a whole number >= 1")
        require(self, "batch", self.batch >= 0, "a whole number >= 0 (0: every run)")
        require(self, "lr", self.lr >= 0, "a finite number > 0 (0: from the size)")
        for beta in ("beta1", "beta2"):
            require(self, beta, 0 <= getattr(self, beta) < 1, "in [0, 1)")
        for weight in ("bn_weight", "first_bn_weight", "tv_weight", "l2_weight"):
            value = getattr(self, weight)
            require(
                self, weight, value >= 0 or value == -1, "a finite number >= 0 (-1: from the size)"
            )
        require(
            self, "zoom", 0 <= self.zoom < 1 or self.zoom == -1, "in [0, 1) (-1: from the size)"
        )
        require(self, "jitter", -1 <= self.jitter <= 64, "0 to 64, or -1 (from the shape)")
        require(self, "basis", self.basis in BASES, " or ".join(BASES))
        require(self, "resolutions", self.resolutions in (0, 1, 2), "0 (from the shape), 1 or 2")
        require(self, "coarse_share", 0 <= self.coarse_share < 1, "in [0, 1)")
        require(
            self, "coarse_input", self.coarse_input in COARSE_INPUTS, " or ".join(COARSE_INPUTS)
        )
        require(self, "polish_share", 0 <= self.polish_share < 1, "in [0, 1)")
        require(
            self,
            "half_share",
            0 <= self.half_share <= 1 or self.half_share == -1,
            "in [0, 1] (-1: from the size)",
        )
        require(
            self,
            "polish_blur",
            0 <= self.polish_blur <= MAX_BLUR or self.polish_blur == -1,
            f"0 to {MAX_BLUR} pixels (-1: from the size)",
        )

    @property
    def queries_per_step(self) -> int:
        return 2  # the views' gradient, and the image itself scored

    def check_shape(self, shape: ImageShape) -> None:
        if "colour" in self.basis and shape.channels != RGB:
            raise IdentikitError(
                f"invert: --option basis={self.basis} needs images of {RGB} channels (RGB); "
                f"the model takes {shape}"
            )
        if self.resolutions == 2 and min(shape.height, shape.width) < 4:
            raise IdentikitError(f"invert: images of {shape} are too small to halve")

    def for_shape(self, shape: ImageShape) -> Inversion:
        self.check_shape(shape)
        side = min(shape.height, shape.width)
        large = side >= COARSE_SIDE
        chosen = self
        if not self.resolutions:
            chosen = dataclasses.replace(chosen, resolutions=2 if large else 1)
        if self.jitter < 0:
            chosen = dataclasses.replace(chosen, jitter=max(MIN_JITTER, round(side / JITTER_SHARE)))
        sized = dict(LARGE_IMAGES if large else SMALL_IMAGES)
        if shape.channels != RGB:  # no colour to decorrelate
            sized["basis"] = sized["basis"].replace("colour,", "")
        placeholders = {"basis": "auto", "lr": 0.0}
        taken = {
            key: value
            for key, value in sized.items()
            if getattr(chosen, key) == placeholders.get(key, -1)
        }
        return dataclasses.replace(chosen, **taken) if taken else chosen

    def batch_runs(self, runs: int) -> int | None:
        return min(self.batch, runs) if self.batch else runs

    def grouping(self, runs: int) -> str | None:
        return (
            f"batches of {self.batch_runs(runs)} runs in layout order (class-major); "
            "the batch-norm statistics are shared within a batch"
        )

    @property
    def polish_from(self) -> int:
        """The first step that polishes (``steps`` where none does)."""
        return self.steps - round(self.steps * self.polish_share)

    @property
    def coarse_steps(self) -> int:
        """Steps drawn at half size (0 without ``resolutions`` 2)."""
        if self.resolutions != 2:
            return 0
        return min(round(self.steps * self.coarse_share), self.polish_from)  # polish: full size

    @property
    def half_steps(self) -> int:
        """The first coarse steps, in which the model sees the half-size image as it is (0
        with ``coarse_input`` full); in the coarse steps after them it sees it upsampled."""
        if self.coarse_input != "half":
            return 0
        return round(self.coarse_steps * max(self.half_share, 0.0))

    def init_memory(self, state: SearchState) -> dict[str, torch.Tensor]:
        # x: the image in pixels; m, v, t: Adam's moments (in the basis's coordinates) and
        # step counts. Each run starts from noise of its own seed (iteration -1, before any
        # step's), so its start depends on the seed alone. A half-size image drawn at its own
        # size is held in x's top-left corner, its moments in the first of m's and v's values.
        device = state.images.device
        shape = state.images.shape[1:]
        x = torch.stack(
            [
                START_LOW + START_SPREAD * torch.rand(shape, generator=g, device=device)
                for g in (run_generator(seed, -1, device) for seed in state.seeds)
            ]
        )
        strategy = self.for_shape(ImageShape.of(shape))
        if strategy.half_steps:
            small = strategy.coarse_shape(ImageShape.of(shape))
            x[:, :, : small.height, : small.width] = F.adaptive_avg_pool2d(x, small.dims[1:])
        zeros = torch.zeros_like(strategy._basis(ImageShape.of(shape)).from_image(x))
        return {"x": x, "m": zeros, "v": zeros.clone(), "t": torch.zeros_like(state.iterations)}

    def coarse_shape(self, shape: ImageShape) -> ImageShape:
        """The size of a coarse step's image: half of ``shape`` (rounded down)."""
        return ImageShape(shape.channels, shape.height // 2, shape.width // 2)

    def step(self, classifier: Classifier, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        iteration = int(group.iterations.min())
        if iteration != int(group.iterations.max()):  # advance steps a batch in lock-step
            raise ValueError("a batch's runs must be at the same step")
        full = ImageShape.of(group.images.shape[1:])
        coarse = iteration < self.coarse_steps
        small = iteration < self.half_steps  # the model sees the half-size image
        shape = self.coarse_shape(full) if small else full
        polishing = iteration >= self.polish_from
        # A polish moves the image itself (or, with polish_blur, the image it blurs): in the
        # Fourier basis its steps of the drawing's size moved whole regions, and the judge then
        # named none of 40 ImageNet images; unblurred, it added pixel-scale noise.
        basis = Basis(blur=self.polish_blur) if polishing else self._basis(shape)
        box = Normalisation.of(classifier.preprocessing, full.channels, group.images.device)
        memory = group.memory
        with torch.enable_grad():
            x = memory["x"][:, :, : shape.height, : shape.width]
            parameters = basis.from_image(box.normalise(x)).requires_grad_(True)
            drawn = basis.to_image(parameters)
            if polishing:  # the image itself, its target's log-probability alone
                views = box.pixels(drawn)
                found = self._polish_gradients(classifier, views.detach(), group, box)
            else:
                seen = half(drawn) if coarse and not small else drawn
                views = box.pixels(_views(seen, group, self, small))
                found = self._drawing_gradients(classifier, views.detach(), group, box)
            (gradient,) = torch.autograd.grad(views, parameters, found)
        m, v = (_unpack(memory[key], parameters.shape) for key in ("m", "v"))
        change, m, v, t = self._adam(m, v, memory["t"], gradient, iteration)
        z = box.clamp(basis.held(parameters.detach() + change))
        if small and iteration + 1 == self.half_steps:
            # The last step seen at half size: the full-size image is the half-size one
            # upsampled (DeepInversion starts an optimiser per resolution: see phase_starts).
            z = _resize(z, full)
        elif coarse and iteration + 1 == self.coarse_steps:  # the last coarse step
            z = half(z)
        if iteration + 1 in self.phase_starts:  # Adam starts afresh on the next step
            m, v, t = (torch.zeros_like(memory[key]) for key in ("m", "v", "t"))
        memory.update(m=_pack(m, memory["m"]), v=_pack(v, memory["v"]), t=t)
        pixels = box.pixels(z)
        memory["x"] = memory["x"].clone()
        memory["x"][:, :, : z.shape[2], : z.shape[3]] = pixels
        still_small = small and iteration + 1 < self.half_steps  # z is the half-size image
        if still_small:  # the run's image is it upsampled
            image = _resize(pixels, full)
        elif iteration + 1 < self.coarse_steps:  # still coarse: the image at half resolution
            image = box.pixels(half(z))
        else:  # a blurred polish holds the image it blurs (a blur commutes with the box)
            image = basis.shown(memory["x"])
        image = image.clamp(0.0, 1.0)
        # The image itself is what the run draws: its own score, not its views'; a half-size
        # image the model sees as it is, at its own size.
        if still_small:
            log_probabilities = classifier.log_probabilities_at_any_size(pixels.clamp(0.0, 1.0))
        else:
            log_probabilities = classifier.log_probabilities(image)
        scores = log_probabilities.gather(1, group.targets.view(-1, 1))
        group.progressed = torch.ones_like(group.targets, dtype=torch.bool)
        return image, scores.squeeze(1)

    def _drawing_gradients(
        self, classifier: Classifier, views: torch.Tensor, group: Group, box: Normalisation
    ) -> torch.Tensor:
        """:meth:`_view_gradients`, with a one-line error where the model refuses the views'
        size (a coarse step's half size, which a network that does not pool globally refuses)."""
        if tuple(views.shape[1:]) == classifier.info.input_shape.dims:
            return self._view_gradients(classifier, views, group, box)
        try:
            return self._view_gradients(classifier, views, group, box)
        except IdentikitError:
            raise
        except Exception as exc:  # whatever the model raises at a size not its own
            size = " x ".join(str(d) for d in views.shape[1:])
            raise IdentikitError(
                f"invert: {classifier.name} does not take images of half its size ({size}): "
                f"--option coarse_input=full shows it the coarse image upsampled "
                f"({first_line(exc)})"
            ) from None

    def _view_gradients(
        self, classifier: Classifier, views: torch.Tensor, group: Group, box: Normalisation
    ) -> torch.Tensor:
        """The gradients (N, C, H, W) at the views, in pixels, of the sum of their objectives
        minus ``bn_weight`` x N x the batch's statistics term (one pass for the batch)."""
        found = classifier.value_and_grad_with_statistics(
            views,
            self.objective(group.targets, box),
            self.bn_weight * len(group.targets),
            layer_weights=self._layer_weights(classifier),
        )
        return found.grads

    def _polish_gradients(
        self, classifier: Classifier, images: torch.Tensor, group: Group, box: Normalisation
    ) -> torch.Tensor:
        """The gradients (N, C, H, W) of each image's target log-probability alone."""
        _, grads = classifier.value_and_grad(images, self.polish_objective(group.targets, box))
        return grads

    def polish_objective(self, targets: torch.Tensor, box: Normalisation) -> Objective:
        """A polishing step's objective: the target's log-probability, nothing penalised."""
        return _Objective(targets, box, 0.0, 0.0)

    def objective(self, targets: torch.Tensor, box: Normalisation) -> Objective:
        """Each view's target log-probability minus its image priors (see the module)."""
        return _Objective(targets, box, self.tv_weight, self.l2_weight)

    def _layer_weights(self, classifier: Classifier) -> tuple[float, ...]:
        count = len(classifier.batch_norm_layers())
        return (self.first_bn_weight,) + (1.0,) * (count - 1) if count else ()

    def _adam(
        self,
        m: torch.Tensor,
        v: torch.Tensor,
        t: torch.Tensor,
        gradient: torch.Tensor,
        iteration: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Adam's ascent step (Kingma & Ba 2015) on every run from its moments ``m``, ``v`` and
        step counts ``t``, its step size decayed by a cosine (:meth:`decay`): the step and the
        updated moments and counts."""
        t = t + 1
        m = self.beta1 * m + (1 - self.beta1) * gradient
        v = self.beta2 * v + (1 - self.beta2) * gradient.pow(2)
        per_run = (-1,) + (1,) * (m.dim() - 1)
        bias_m = (1 - self.beta1 ** t.double()).float().view(per_run)
        bias_v = (1 - self.beta2 ** t.double()).float().view(per_run)
        lr = self.lr * self.decay(iteration)
        return lr * (m / bias_m) / ((v / bias_v).sqrt() + EPSILON), m, v, t

    @property
    def restarts_polish(self) -> bool:
        """Whether the polish starts Adam and its cosine afresh: where the drawing moved
        another basis than the image itself (whose moments the polish cannot use)."""
        return self.basis not in ("pixels", "auto") and self.polish_from < self.steps

    @property
    def phase_starts(self) -> frozenset[int]:
        """The steps at which Adam and its cosine start afresh: the first, the first at full
        size after coarse steps, and the polish's first where :attr:`restarts_polish`; the
        first coarse step seen upsampled, whose image is held at full size."""
        starts = {0, self.half_steps, self.coarse_steps}
        if self.restarts_polish:
            starts.add(self.polish_from)
        return frozenset(starts - {self.steps})

    def decay(self, iteration: int) -> float:
        """The step size's factor at ``iteration``: a cosine from 1 to 0 over the steps of its
        phase (:attr:`phase_starts`; the planned steps where there is one phase)."""
        if iteration >= self.steps:
            return 0.0
        start = max(b for b in self.phase_starts if b <= iteration)
        end = min((b for b in self.phase_starts if b > iteration), default=self.steps)
        return 0.5 * (1 + math.cos(math.pi * (iteration - start) / max(end - start, 1)))

    def _basis(self, shape: ImageShape) -> Basis:
        return Basis(
            colour="colour" in self.basis,
            fourier=Fourier(shape.height, shape.width) if "fourier" in self.basis else None,
        )


def half(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) at half the size (2 x 2 means), upsampled bilinearly to H x W: what
    the model sees of an image drawn coarse with ``coarse_input`` full."""
    small = F.avg_pool2d(images, 2)
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _resize(images: torch.Tensor, shape: ImageShape) -> torch.Tensor:
    """Images (N, C, h, w) resized bilinearly to ``shape``'s height and width."""
    return F.interpolate(images, size=shape.dims[1:], mode="bilinear", align_corners=False)


def _pack(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` (N, ...) held in a tensor of ``like``'s shape: the same where the shapes
    agree, else its first values, row by row, the rest 0 (a half-size image's moments)."""
    if values.shape == like.shape:
        return values
    held = torch.zeros_like(like)
    held.view(len(like), -1)[:, : values[0].numel()] = values.reshape(len(values), -1)
    return held


def _unpack(held: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The values of ``shape`` that :func:`_pack` held in ``held``."""
    if held.shape == shape:
        return held
    return held.reshape(len(held), -1)[:, : shape[1:].numel()].reshape(shape)


def _views(images: torch.Tensor, group: Group, strategy: Inversion, small: bool) -> torch.Tensor:
    """Each run's image rolled by its own random shift of up to ``jitter`` pixels in x and y
    (half as far on a ``small``, half-size, image), with ``flips`` mirrored left to right at
    random, and with ``zoom`` scaled about its centre (from the run's generator)."""
    seen = []
    # A strategy not made for a shape (see Inversion.for_shape) takes its images'.
    made = strategy.for_shape(ImageShape.of(images.shape[1:]))
    jitter = made.jitter // 2 if small else made.jitter
    for image, generator in zip(images, group.generators, strict=True):
        dy, dx = torch.randint(
            -jitter, jitter + 1, (2,), generator=generator, device=image.device
        ).tolist()
        flip = float(torch.rand((), generator=generator, device=image.device)) < 0.5
        view = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
        view = view.flip(2) if strategy.flips and flip else view
        if made.zoom > 0:
            factor = 1 + made.zoom * (
                2 * float(torch.rand((), generator=generator, device=image.device)) - 1
            )
            view = zoomed(view, factor)
        seen.append(view)
    return torch.stack(seen)


def zoomed(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``image`` (C, H, W) scaled by ``factor`` about its centre, bilinearly, then cropped to
    H x W (larger) or padded back by reflection (smaller; by its edge where too small)."""
    height, width = image.shape[1:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    if top >= 0 and left >= 0:
        return scaled[:, top : top + height, left : left + width]
    down, across = height - size[0], width - size[1]
    pads = (across // 2, across - across // 2, down // 2, down - down // 2)
    mode = "reflect" if max(down, across) < min(size) else "replicate"
    return F.pad(scaled[None], pads, mode=mode)[0]


@dataclass(frozen=True)
class Basis:
    """What Adam moves: the normalised image itself, or its decorrelated colour and/or
    Fourier coordinates (the image is the colour basis's image of the Fourier basis's), or
    (``blur`` > 0) an image whose Gaussian blur is the image."""

    colour: bool = False
    fourier: Fourier | None = None
    blur: float = 0.0

    def to_image(self, parameters: torch.Tensor) -> torch.Tensor:
        return self.shown(self.held(parameters))

    def shown(self, held: torch.Tensor) -> torch.Tensor:
        """The image of what a run holds: itself, or its blur."""
        return gaussian_blur(held, self.blur) if self.blur > 0 else held

    def held(self, parameters: torch.Tensor) -> torch.Tensor:
        """What a run holds between steps: the image, or the image a blur blurs (a blur has
        no inverse, so the parameters themselves are kept)."""
        image = parameters if self.fourier is None else self.fourier.to_image(parameters)
        return DecorrelatedColour().to_image(image) if self.colour else image

    def from_image(self, images: torch.Tensor) -> torch.Tensor:
        parameters = DecorrelatedColour().from_image(images) if self.colour else images
        return parameters if self.fourier is None else self.fourier.from_image(parameters)


@dataclass(frozen=True)
class Normalisation:
    """The model's per-channel affine map from pixels in [0, 1] to its normalised inputs,
    ``z = x * scale + offset`` (its range, mean and std; not its layout), and back."""

    scale: torch.Tensor
    offset: torch.Tensor

    @staticmethod
    def of(preprocessing: Preprocessing, channels: int, device: torch.device) -> Normalisation:
        low, high = INPUT_RANGES[preprocessing.input_range]

        def column(values: float | tuple[float, ...]) -> torch.Tensor:
            given = torch.tensor(values, dtype=torch.float32, device=device).reshape(-1)
            return given.expand(channels).reshape(1, channels, 1, 1)

        mean, std = column(preprocessing.mean), column(preprocessing.std)
        return Normalisation((high - low) / std, (low - mean) / std)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels * self.scale + self.offset

    def pixels(self, normalised: torch.Tensor) -> torch.Tensor:
        return (normalised - self.offset) / self.scale

    def clamp(self, normalised: torch.Tensor) -> torch.Tensor:
        """The normalised images with every value inside the valid pixel range [0, 1]."""
        return torch.minimum(torch.maximum(normalised, self.offset), self.scale + self.offset)


@dataclass(frozen=True)
class _Objective:
    """Each view's target log-probability minus ``tv_weight`` x its mean squared total
    variation and ``l2_weight`` x its mean squared value, both in normalised units."""

    targets: torch.Tensor
    box: Normalisation
    tv_weight: float
    l2_weight: float

    def __call__(self, images: torch.Tensor, logp: torch.Tensor, rows: slice) -> torch.Tensor:
        own = logp.gather(1, self.targets[rows].view(-1, 1)).squeeze(1)
        z = self.box.normalise(images)
        down = (z[:, :, 1:, :] - z[:, :, :-1, :]).pow(2).mean(dim=(1, 2, 3))
        across = (z[:, :, :, 1:] - z[:, :, :, :-1]).pow(2).mean(dim=(1, 2, 3))
        return own - self.tv_weight * (down + across) - self.l2_weight * z.pow(2).mean((1, 2, 3))

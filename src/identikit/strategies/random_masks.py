"""The original identikit method: greedy random search with random perturbation masks.

Each iteration draws ``candidates`` masks; in a mask every pixel is selected independently with
probability ``mask_density``, and a selected pixel gets an offset drawn uniformly from
[-``mask_amplitude``, ``mask_amplitude``]; unselected pixels are unchanged. Each mask is added to
the run's current base image and the sum clipped to [0, 1]. The candidate the model finds most
like the target becomes the new base, but only when it beats the base (elitist hill climbing),
so a run's best confidence never decreases. A colour image's pixel is one value per channel,
each selected on its own.

Grey images draw one uniform number per pixel, as identikit always has, so their sweeps stay as
recorded. Images of several channels draw the positions of the selected values directly: the
gaps between successive selected values of a sequence of independent Bernoulli trials are
geometric, ``floor(log U / log(1 - density))`` for U uniform (Devroye 1986, "Non-Uniform Random
Variate Generation", ch. X.2), the same masks from a tenth of the random numbers at the default
density. Drawing one number per value took 60% of the search loop's time outside the model on
3 x 32 x 32 images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from identikit.base.shapes import ImageShape
from identikit.strategies.base import Group, Strategy, uniform
from identikit.strategies.registry import check_settings, register, require
from identikit.strategies.shape_defaults import mask_candidates, mask_density

# Uniform numbers one block of runs of a sparse draw takes at most on a CPU: 1 MiB of float32
# (a core's L2 cache here is 2 MiB). See RandomMasks._sparse.
SPARSE_BLOCK_VALUES = 2**18


@register
@dataclass(frozen=True, kw_only=True)
class RandomMasks(Strategy):
    """Random perturbation masks around the current base; keep the best if it improves.

    Args:
        candidates: masks drawn per iteration; 0 (the default) is from the image's shape:
            500 on grey images of at least 28 x 28 (MNIST's), 20 on others.
        mask_density: probability that a value is perturbed; 0 (the default) is from the
            image's shape: 0.05 on grey images (about 39 pixels on MNIST), about six values
            on colour ones (0.002 at 3 x 32 x 32). See
            :mod:`identikit.strategies.shape_defaults`.
        mask_amplitude: largest offset of a perturbed pixel (default 1.0, the whole range).
    """

    name = "random-masks"
    source = "the original identikit method: greedy random search with random masks"
    candidates: int = 0
    mask_density: float = 0.0
    mask_amplitude: float = 1.0

    def __post_init__(self) -> None:
        check_settings(self)  # types, and every float finite
        require(self, "candidates", self.candidates >= 0, "0 (from the image's shape) or >= 1")
        require(
            self,
            "mask_density",
            0 <= self.mask_density <= 1,
            "0 (from the image's shape) or in (0, 1]",
        )
        require(self, "mask_amplitude", 0 < self.mask_amplitude <= 1, "in (0, 1]")

    @property
    def queries_per_step(self) -> int:
        return self.candidates

    def for_shape(self, shape: ImageShape) -> RandomMasks:
        # Settings left at 0 follow the image's size and channels (see shape_defaults).
        self.check_shape(shape)
        return dataclasses.replace(
            self,
            candidates=self.candidates or mask_candidates(shape),
            mask_density=self.mask_density or mask_density(shape),
        )

    def propose(self, group: Group) -> torch.Tensor:
        if not (self.candidates and self.mask_density):  # not made for a shape: for the group's
            return self.for_shape(ImageShape(*group.images.shape[1:])).propose(group)
        channels, *_ = group.images.shape[1:]
        values = group.images[0].numel()
        most = most_selected(values, self.mask_density)
        if channels > 1 and 2 * most < values:
            return self._sparse(group, most)
        return self._dense(group)

    def _dense(self, group: Group) -> torch.Tensor:
        """Masks from one uniform number per value."""
        # One uniform draw u per pixel serves twice: the pixel is selected when u < density, and
        # given that, u / density is again uniform on [0, 1), so the offset
        # (2 u / density - 1) * amplitude is uniform on [-amplitude, amplitude). Half the random
        # numbers of two separate draws, the same distribution. In place: 16,000 candidates are
        # 50 MB.
        shape = (self.candidates, *group.images.shape[1:])
        storage = group.candidate_storage((len(group.generators), *shape))
        u = uniform(group.generators, shape, group.images.device, out=storage)
        unselected = u >= self.mask_density
        masks = (
            u.mul_(2 * self.mask_amplitude / self.mask_density)
            .sub_(self.mask_amplitude)
            .masked_fill_(unselected, 0.0)  # 4x faster than multiplying by a bool tensor
        )
        return masks.add_(group.images.unsqueeze(1)).clamp_(0.0, 1.0)

    def _sparse(self, group: Group, most: int) -> torch.Tensor:
        """Masks from the positions of their ``most`` first selected values: geometric gaps,
        then an offset for each (two uniform numbers per selected value)."""
        runs, images = len(group.generators), group.images.flatten(1)  # (G, P)
        u = uniform(group.generators, (self.candidates, 2 * most), images.device)
        out = group.candidate_storage((runs, self.candidates, images.shape[1]))
        # On a CPU the runs are taken a block at a time, each block's draws about 1 MiB, so that
        # they and the arrays made from them stay in a core's cache: 5% more of the search
        # loop's rate on 3 x 32 x 32 images than one pass over a group's 24 MB of draws. A GPU
        # takes the group at once (a block per run would be a dozen kernel launches each).
        block = runs if u.is_cuda else max(1, SPARSE_BLOCK_VALUES // u[0].numel())
        overflowed = torch.cat(
            [
                self._sparse_rows(images[rows], u[rows], out[rows], most)
                for rows in (slice(r, r + block) for r in range(0, runs, block))
            ]
        )
        out = out.view(runs, self.candidates, *group.images.shape[1:])
        # A run with a mask that used every gap without passing the image's end may have had
        # more values selected than room was made for (see most_selected): its masks are drawn
        # again, one number per value, from its own generator, which goes on where it stopped.
        for run in overflowed.nonzero().flatten().tolist():
            out[run] = self._dense(_one_run(group, run))[0]
        return out

    def _sparse_rows(
        self, images: torch.Tensor, u: torch.Tensor, out: torch.Tensor, most: int
    ) -> torch.Tensor:
        """Fill ``out`` (R, K, P) with the masked images of ``images`` (R, P) from the draws
        ``u`` (R, K, 2 most); return which of the R runs overflowed (see :meth:`_sparse`)."""
        runs, values = images.shape
        # Values skipped before each selected one; u = 0 gives an infinite gap, past the image.
        # Positions are whole numbers, exact in float32 below 2^24 (4 times faster than
        # float64 here), in float64 beyond.
        exact = torch.float32 if values < 2**24 else torch.float64
        gaps = u[..., :most].to(exact).log_().div_(math.log1p(-self.mask_density)).floor_()
        positions = gaps.add_(1).cumsum_(dim=2).sub_(1)
        inside = positions < values
        index = positions.clamp_(max=values - 1).long().view(runs, -1)
        offsets = u[..., most:].mul_(2 * self.mask_amplitude).sub_(self.mask_amplitude)
        current = images.gather(1, index).view_as(offsets)
        # What each selected value changes by once clipped; 0 for positions past the image
        # (clamped onto its last value, where adding 0 changes nothing).
        change = (current + offsets).clamp_(0.0, 1.0).sub_(current).masked_fill_(~inside, 0.0)
        out.copy_(images.unsqueeze(1).expand_as(out))
        out.scatter_add_(2, index.view_as(change), change)
        overflowed: torch.Tensor = inside[..., -1].any(dim=1)
        return overflowed


def _one_run(group: Group, run: int) -> Group:
    """The group of run ``run`` alone."""
    rows = slice(run, run + 1)
    return Group(
        images=group.images[rows],
        scores=group.scores[rows],
        targets=group.targets[rows],
        iterations=group.iterations[rows],
        generators=group.generators[rows],
        memory={},
    )


def most_selected(values: int, density: float) -> int:
    """The selected values a sparse draw makes room for in a mask of ``values``: the mean
    ``values x density``, ten standard deviations more and 10, at most ``values``. A binomial
    count goes that far past its mean with probability below 3e-7 whatever the numbers
    (Bernstein's inequality), below 1e-17 at the default density on 3 x 32 x 32 images; where
    it happens the run draws its masks the dense way (see :meth:`RandomMasks._sparse`)."""
    mean = values * density
    return min(values, math.ceil(mean + 10 * math.sqrt(mean * (1 - density)) + 10))

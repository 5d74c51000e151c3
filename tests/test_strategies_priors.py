"""Image priors (identikit.strategies.priors): each prior's effect, how priors compose, and the
manifold prior's subspace, which it is given and never reads from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.strategies import (
    Budget,
    PriorInputs,
    PriorNeeds,
    StrategySpec,
    Subspace,
    advance,
    initial_state,
    make_strategy,
)
from identikit.strategies.priors import (
    Blur,
    Jitter,
    ManifoldDistance,
    Prior,
    SquaredNorm,
    TotalVariation,
    gaussian_blur,
)
from identikit.strategies.registry import describe_strategy
from tests.helpers import make_digits, toy_linear

PIXELS = 28 * 28


def noise(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def hand_made(mean: float, components: int = 3, offset: int = 0) -> Subspace:
    """A subspace spanned by ``components`` pixel axes from ``offset``, around a flat image."""
    basis = torch.eye(PIXELS)[:, offset : offset + components]
    return Subspace(torch.full((PIXELS,), mean), basis)


# --- each prior's effect ----------------------------------------------------------------------


def test_total_variation_is_zero_on_flat_images_and_grows_with_edges() -> None:
    flat = torch.full((1, 1, 28, 28), 0.3)
    edge = torch.zeros(1, 1, 28, 28)
    edge[..., 14:] = 1.0  # one vertical edge, 28 pixels long
    tv = TotalVariation(1.0)
    assert tv.cost(flat).item() == 0.0
    assert tv.cost(edge).item() == 28.0
    assert tv(edge, 0.5).item() == 14.0  # scaled, then weighted


def test_squared_norm_counts_the_ink() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, :2, :2] = 0.5
    assert SquaredNorm(2.0)(image).item() == 2.0 * 4 * 0.25


def test_blur_smooths_and_keeps_flat_images() -> None:
    x = noise()
    blurred = Blur(0.8)(x)
    assert blurred.shape == x.shape
    assert (TotalVariation(1.0).cost(blurred) < TotalVariation(1.0).cost(x)).all()
    flat = torch.full((1, 1, 28, 28), 0.25)
    torch.testing.assert_close(Blur(0.8)(flat), flat)


def test_jitter_shifts_by_the_runs_own_generators() -> None:
    x = noise(2)
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    shifted = Jitter(2)(x, generators)
    again = Jitter(2)(x, [torch.Generator().manual_seed(s) for s in (1, 2)])
    assert torch.equal(shifted, again)  # the same generators, the same shifts
    assert not torch.equal(shifted, x)
    untouched = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    assert Jitter(0)(x, untouched) is x  # no shift: the image itself, no number drawn
    assert torch.equal(untouched[0].get_state(), torch.Generator().manual_seed(1).get_state())
    with pytest.raises(IdentikitError, match=r"0\.\.2 pixels"):
        Jitter(3)


def test_manifold_distance_is_the_distance_from_the_subspace_given() -> None:
    subspace = hand_made(0.5, components=2)
    inside = torch.full((1, 1, 28, 28), 0.5)
    inside.view(-1)[:2] = torch.tensor([0.9, 0.1])  # moves along the two basis axes only
    outside = inside.clone()
    outside.view(-1)[5] = 0.7  # 0.2 off the subspace
    penalty = ManifoldDistance(1.0, subspace)
    assert penalty.cost(inside).item() == 0.0
    assert penalty.cost(outside).item() == pytest.approx(0.04)


def test_a_subspace_of_other_images_is_refused() -> None:
    small = Subspace(torch.zeros(9), torch.eye(9)[:, :2])
    with pytest.raises(IdentikitError, match="images of 9 values; the model takes 1x28x28"):
        small.distance(noise())
    with pytest.raises(IdentikitError, match="a mean"):
        Subspace(torch.zeros(9), torch.eye(8))


def test_principal_subspace_of_images() -> None:
    images, _ = make_digits(300)
    subspace = Subspace.of_images(images, 5)
    assert (subspace.pixels, subspace.components) == (PIXELS, 5)
    expected_mean = torch.from_numpy(images.reshape(300, -1).astype(np.float64) / 255).mean(0)
    torch.testing.assert_close(subspace.mean, expected_mean.float())
    gram = subspace.basis.T @ subspace.basis
    torch.testing.assert_close(gram, torch.eye(5), atol=1e-5, rtol=0)
    with pytest.raises(IdentikitError, match=r"1\.\.784 components"):
        Subspace.of_images(images, 785)


# --- composition ------------------------------------------------------------------------------


def test_priors_compose_in_the_order_they_are_added() -> None:
    tv, l2, blur, jitter = TotalVariation(0.1), SquaredNorm(0.2), Blur(0.5), Jitter(1)
    prior = tv + blur + l2 + jitter
    assert prior == Prior(penalties=(tv, l2), transforms=(blur,), views=(jitter,))
    assert (l2 + tv).penalties == (l2, tv)
    assert (tv + (l2 + blur)) == (tv + l2) + blur  # associative
    x, value, fade = noise(), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.5, 0.25])
    # Penalties are paid one after the other, each faded then weighted.
    by_hand = value - fade * 0.1 * TotalVariation(1.0).cost(x) - fade * 0.2 * (x**2).sum((1, 2, 3))
    assert torch.equal(prior.penalise(value, x, fade), by_hand)
    # Transforms act in order: a wide blur after a narrow one is not the narrow after the wide.
    narrow_then_wide = (Blur(0.5) + Blur(2.0)).transform(x)
    assert torch.equal(narrow_then_wide, gaussian_blur(gaussian_blur(x, 0.5), 2.0))
    assert not torch.equal(narrow_then_wide, (Blur(2.0) + Blur(0.5)).transform(x))
    assert Prior().penalise(value, x) is value and Prior().transform(x) is x


def test_gradient_composes_its_named_priors_in_one_order() -> None:
    subspace = hand_made(0.0, components=4)
    strategy = make_strategy(
        "gradient", priors="jitter,manifold,blur,l2,tv", manifold_components=4
    ).with_inputs(PriorInputs(subspace))
    prior = strategy.prior()
    assert [type(p) for p in prior.penalties] == [TotalVariation, SquaredNorm, ManifoldDistance]
    assert prior.penalties[2] == ManifoldDistance(2.0, subspace)
    assert prior.transforms == (Blur(0.4),) and prior.views == (Jitter(1),)
    same = make_strategy("gradient", priors="tv,l2,blur,jitter,manifold", manifold_components=4)
    assert same.with_inputs(PriorInputs(subspace)).prior() == prior
    assert make_strategy("gradient").prior() == Prior()


# --- the manifold prior's subspace is given, never read -----------------------------------------


def manifold_search(subspace: Subspace | None, **settings: object) -> torch.Tensor:
    classifier = Classifier(toy_linear())
    state = initial_state(classifier, [0, 7], [1, 2], start="noise")
    spec = StrategySpec("gradient", {"priors": "manifold", "manifold_components": 3, **settings})
    strategy = spec.build(PriorInputs(subspace))
    advance(state, strategy, classifier, [Budget(6)])
    return state.images


def test_the_manifold_prior_uses_the_subspace_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No dataset anywhere: a prior that read one would fail.
    monkeypatch.setenv("IDENTIKIT_DATA", str(tmp_path))
    dark, light = hand_made(0.0), hand_made(1.0)
    assert torch.equal(manifold_search(dark), manifold_search(dark))
    assert not torch.equal(manifold_search(dark), manifold_search(light))
    assert not torch.equal(manifold_search(dark), manifold_search(hand_made(0.0, offset=400)))
    assert list(tmp_path.iterdir()) == []


def test_a_missing_or_wrong_subspace_is_a_clear_error() -> None:
    with pytest.raises(IdentikitError, match=r"manifold prior needs .*\(3 components\)"):
        manifold_search(None)
    with pytest.raises(IdentikitError, match="needs a subspace of 3 components, got one of 5"):
        manifold_search(hand_made(0.0, components=5))
    # A strategy made without its inputs says so at its first step, before any query.
    classifier = Classifier(toy_linear())
    state = initial_state(classifier, [0], [1])
    with pytest.raises(IdentikitError, match="manifold prior needs"):
        advance(state, make_strategy("gradient", priors="manifold"), classifier, [Budget(5)])
    assert classifier.queries == 1  # the start image only


def test_what_a_strategy_needs_and_records() -> None:
    assert StrategySpec("gradient", {"priors": "tv"}).needs() == PriorNeeds()
    spec = StrategySpec("gradient", {"priors": "manifold,blur", "manifold_components": 7})
    assert spec.needs() == PriorNeeds(subspace_components=7)
    assert StrategySpec("square").needs() == PriorNeeds()
    built = StrategySpec("gradient", {"priors": "manifold"}).build(
        PriorInputs(hand_made(0.0, components=40))
    )
    # The subspace is an input, not a setting: never recorded, never set by a user.
    assert "subspace" not in built.settings()
    assert built.settings() == make_strategy("gradient", priors="manifold").settings()
    assert "subspace" not in {o["name"] for o in describe_strategy("gradient")["options"]}
    with pytest.raises(IdentikitError, match="takes no --subspace"):
        make_strategy("gradient", subspace=None)

"""The exact ceiling of a linear model of any image shape, checked against brute force, written for
grey and colour models, and shown by ``identikit ceiling`` and ``identikit compare``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.studies.ceiling import linear_ceiling, model_ceiling, write_ceiling
from identikit.sweeps.result_files import read_ceiling
from tests.helpers import assert_one_line_error, one_line_message, run_cli


def test_matches_brute_force_on_a_tiny_linear_model() -> None:
    torch.manual_seed(1)
    weight, bias = torch.randn(4, 3), torch.randn(4)
    ceiling = linear_ceiling(weight, bias)
    grid = torch.tensor(
        list(itertools.product(torch.linspace(0, 1, 81).tolist(), repeat=3)), dtype=torch.float64
    )
    logp = torch.log_softmax(grid @ weight.double().T + bias.double(), dim=1)
    brute = logp.max(dim=0).values  # best over the grid, per class
    assert (ceiling.log_probability >= brute - 1e-9).all()  # at least as good as any grid point
    assert (ceiling.gap >= 0).all()
    assert (ceiling.log_probability + ceiling.gap >= brute).all()
    # The certificate is tight: the grid's best is within the gap plus the grid's coarseness.
    assert (ceiling.log_probability - brute < 0.05).all()
    assert ((ceiling.images >= 0) & (ceiling.images <= 1)).all()
    shortfall = -torch.expm1(ceiling.log_probability)
    assert torch.allclose(ceiling.shortfall, shortfall, rtol=1e-6, atol=1e-12)


def test_only_for_linear_models() -> None:
    with pytest.raises(IdentikitError, match="single linear layer"):
        model_ceiling(build_model("cnn"))
    assert model_ceiling(build_model("softmax")).images.shape == (10, 784)


def test_ceiling_cli(tiny_model: Path, tmp_path: Path) -> None:
    proc = run_cli("ceiling", "--model", str(tiny_model), "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(rows) == {str(d) for d in range(10)}
    for row in rows.values():
        assert 0 <= row["shortfall"] <= 1 and row["gap"] >= 0
        assert row["reaches_0.99"] == (row["shortfall"] <= 0.01)
    assert (tmp_path / "ceiling.png").is_file()
    cnn = tmp_path / "cnn.pt"
    save_checkpoint(cnn, build_model("cnn"), architecture="cnn", metadata={})
    assert_one_line_error(run_cli("ceiling", "--model", str(cnn)), "single linear layer")


def test_compare_shows_the_ceiling_of_a_linear_model(
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    proc = run_cli(
        "compare",
        "--model",
        str(tiny_model),
        "--out",
        str(tmp_path / "c"),
        "--strategies",
        "gradient",
        "--digits",
        "1",
        "--runs",
        "1",
        "--max-queries",
        "50",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("exact ceiling"))
    assert "thresholds within reach" in line


@pytest.mark.parametrize("shape", [ImageShape(3, 8, 6), ImageShape(1, 8, 8)])
def test_the_ceiling_of_a_linear_model_of_any_shape(
    shape: ImageShape, tmp_path: Path, torch_threads: None
) -> None:
    torch.set_num_threads(1)  # tiny matrices: threads only wait on each other
    torch.manual_seed(3)
    model = build_model("softmax", 4, shape)
    ceiling = model_ceiling(model)
    assert ceiling.images.shape == (4, shape.size)
    # The optimum is a real image of the model's shape: the model gives it what was found.
    with torch.no_grad():
        logp = torch.log_softmax(model(ceiling.images.view(-1, *shape.dims)).double(), dim=1)
    torch.testing.assert_close(logp.diagonal(), ceiling.log_probability, rtol=1e-5, atol=1e-5)
    write_ceiling(tmp_path, ceiling, name="colour.pt", sha256="0" * 64, shape=shape)
    record = read_ceiling(tmp_path)
    assert record["model"]["name"] == "colour.pt" and set(record["classes"]) == set("0123")
    assert (tmp_path / "ceiling.png").read_bytes().startswith(b"\x89PNG")


def test_a_shape_that_does_not_fit_the_linear_model_is_refused(tmp_path: Path) -> None:
    ceiling = linear_ceiling(torch.randn(3, 144), torch.zeros(3), steps=5)
    with pytest.raises(IdentikitError) as error:
        write_ceiling(tmp_path, ceiling, name="m.pt", sha256="0" * 64, shape=ImageShape(1, 8, 6))
    message = one_line_message(error)
    assert "144 values" in message and "1x8x6" in message and "48 values" in message
    assert not (tmp_path / "ceiling.json").exists()

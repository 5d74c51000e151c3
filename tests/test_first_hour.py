"""What a new user hit in the first hour: patience, what scores, help, precision, recovery hints,
TorchScript warnings (the issue "The first hour")."""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tqdm import tqdm

from identikit.base.errors import DataError
from identikit.classifier.classifier import Classifier, load_classifier
from identikit.cli import build_parser, main
from identikit.data import datasets as data
from identikit.data.idx import encode_idx
from identikit.models.checkpoint import save_checkpoint
from identikit.models.training_config import TrainConfig
from identikit.strategies import (
    STATUS_NAMES,
    STRATEGIES,
    Budget,
    Converged,
    Stuck,
    advance,
    initial_state,
    make_strategy,
)
from identikit.strategies.base import SearchState
from identikit.strategies.priors import PRIORS
from identikit.strategies.stopping import ACTIVE, STUCK
from identikit.sweeps.experiment import SweepConfig, format_summary
from identikit.training.trainer import fit
from tests.helpers import softmax_model

FAST = ["--backend", "eager", "--chunk-size", "64", "--device", "cpu", "--no-progress"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "softmax.pt"
    save_checkpoint(path, softmax_model(), architecture="softmax", metadata={"test_accuracy": 0.1})
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("identikit: error:")]
    assert len(lines) == 1 and err.strip().endswith(lines[0]), err
    return lines[0]


# 3. Patience counts queries, whatever the strategy.


def crafted_state(stale: list[int]) -> SearchState:
    n = len(stale)
    return SearchState(
        targets=torch.zeros(n, dtype=torch.long),
        seeds=list(range(n)),
        images=torch.zeros(n, 1, 28, 28),
        scores=torch.full((n,), -5.0),
        status=torch.full((n,), ACTIVE, dtype=torch.int8),
        iterations=torch.full((n,), 100, dtype=torch.long),
        queries=torch.full((n,), 1000, dtype=torch.long),
        stale=torch.tensor(stale, dtype=torch.long),
    )


@pytest.mark.parametrize("cost", [500, 508])  # random-masks, and with bf16/int8 re-scoring
def test_default_patience_stops_random_masks_after_50_stale_iterations(cost: int) -> None:
    from identikit.strategies.base import apply_rules

    stale = list(range(0, 60))
    state = crafted_state(stale)
    apply_rules(state, [Converged(0.99), Stuck(), Budget(10**9)], cost)
    assert (state.status == STUCK).tolist() == [s >= 50 for s in stale]


def test_default_patience_lets_a_one_query_step_try_25000_times() -> None:
    state = crafted_state([50, 200, 24_999, 25_000])
    from identikit.strategies.base import apply_rules

    apply_rules(state, [Converged(0.99), Stuck(), Budget(10**9)], 1)
    assert (state.status == STUCK).tolist() == [False, False, False, True]


def test_square_with_default_patience_is_not_stuck_early() -> None:
    # Square search needs a few hundred queries here, with stretches of more than 50
    # iterations (50 queries) without gain: counted in iterations, 4 of these 9 runs were
    # "stuck" after 194 to 424 queries.
    config = SweepConfig(strategy="square", max_queries=5000)
    classifier = Classifier(softmax_model())
    state = initial_state(classifier, [0, 0, 0, 1, 1, 1, 2, 2, 2], list(range(9)))
    advance(state, make_strategy("square"), classifier, config.rules())
    assert [STATUS_NAMES[s] for s in state.status.tolist()] == ["converged"] * 9
    assert int(state.queries.max()) < 2000


def test_search_patience_default_is_in_queries() -> None:
    args = build_parser().parse_args(["search", "--model", "m.pt", "--out", "o"])
    assert args.patience == 25_000 == SweepConfig().patience


# 6. Say what actually scores.


def test_gradient_search_says_pytorch_computes_the_gradients(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        capsys,
        "search",
        "--model",
        str(checkpoint),
        "--out",
        str(tmp_path / "gradient"),
        "--strategy",
        "gradient",
        "--digits",
        "3",
        "--runs",
        "1",
        "--max-queries",
        "20",
        *FAST,
    )
    assert code == 0
    assert "softmax.pt: gradients with PyTorch (fp32, eager" in err
    assert "scoring with" not in err


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_low_precision_is_refused_for_a_white_box_strategy(
    precision: str, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        capsys,
        "search",
        "--model",
        str(checkpoint),
        "--out",
        str(tmp_path / "out"),
        "--strategy",
        "gradient",
        "--precision",
        precision,
        *FAST,
    )
    line = one_line_error(code, err)
    assert f"--precision {precision} does not apply to --strategy gradient" in line
    assert "fp32 with PyTorch" in line
    assert not (tmp_path / "out").exists()


# 9. Help and tables.


def test_search_help_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "{-1,1,0,1,0,255}" not in text
    assert "--input-range RANGE" in text and "0,1 | -1,1 | 0,255" in text
    assert ", ".join(PRIORS) in text
    assert "model queries without gain" in text


def test_strategies_command_lists_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "strategies", "--json")
    assert code == 0
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert set(listed) == set(STRATEGIES)
    square = listed["square"]
    assert "Square Attack" in square["source"] and square["description"]
    assert {"name": "side", "type": "int", "default": 14} in square["options"]
    assert all(entry["source"] for entry in listed.values())
    assert listed["gradient"]["white_box"] and not listed["random-masks"]["white_box"]
    code, out, _ = cli(capsys, "strategies")
    assert code == 0 and "square (black-box)" in out and "--option side" in out


def test_summary_table_with_long_class_names_is_aligned() -> None:
    row = {"runs": 2, "converged": 1, "rate": 0.5, "rate_ci95": [0.1, 0.9], "median_queries": 10}
    results = {
        "settings": {"target": 0.99},
        "model": {"class_names": ["T-shirt/top", "Trouser", "Ankle boot"]},
        "summary": {"0": row, "1": row, "2": row},
        "total_queries": 60,
        "seconds": 1.0,
        "queries_per_second": 60.0,
    }
    lines = format_summary(results).splitlines()
    assert lines[0].split()[0] == "class"
    table = lines[:4]
    assert "0 T-shirt/top" in table[1]
    # Every row's columns end where the header's do.
    header_end = table[0].index("median queries") + len("median queries")
    assert {len(line) for line in table[1:]} == {header_end}


def test_evaluate_says_which_axis_is_the_true_class(
    checkpoint: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(
        capsys,
        "evaluate",
        "--model",
        str(checkpoint),
        "--dataset",
        "tiny",
        "--root",
        str(tiny_dataset),
        "--backend",
        "eager",
        "--chunk-size",
        "64",
        "--device",
        "cpu",
    )
    assert code == 0
    assert "rows are the true class, columns the predicted class" in out


class Failing(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_training_bar_is_closed_when_training_fails() -> None:
    images = np.zeros((8, 28, 28), np.uint8)
    labels = np.zeros(8, np.uint8)
    with pytest.raises(RuntimeError, match="boom"):
        fit(Failing(), images, labels, TrainConfig(epochs=1, batch_size=4, lr=1e-3))
    assert not [bar for bar in getattr(tqdm, "_instances", ()) if not bar.disable]


def test_errors_clear_a_bar_left_showing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from identikit.base.errors import IdentikitError
    from identikit.cli import models

    def fails(_: object) -> int:
        tqdm(total=3, file=sys.stderr, desc="left open")
        raise IdentikitError("bad")

    monkeypatch.setattr(models, "cmd_data", fails)
    code, _, err = cli(capsys, "data")
    # The bar's line was cleared (closed, leave=True writes its final state and a newline),
    # so the error starts a line of its own.
    assert code == 2 and "\nidentikit: error: bad" in err
    assert not list(getattr(tqdm, "_instances", ()))


# 10. --precision means one thing per command.


@pytest.mark.parametrize(
    ("command", "has_precision"),
    [("evaluate", False), ("certainty", False), ("search", True), ("compare", True)],
)
def test_precision_only_where_candidates_are_ranked(
    command: str, has_precision: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--precision" in text) == has_precision
    if has_precision:
        assert "candidates are ranked in" in text


def test_train_precision_is_the_training_arithmetic(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "the arithmetic of training" in " ".join(capsys.readouterr().out.split())


# 11. Recovery hints.


def test_corrupt_mnist_file_says_how_to_recover(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.checksums():
        (folder / name).write_bytes(
            encode_idx(np.zeros((2, 28, 28) if "images" in name else 2, np.uint8))
        )
    with pytest.raises(DataError) as caught:
        data.load_mnist("test", tmp_path)
    message = str(caught.value)
    assert "checksum mismatch" in message and "\n" not in message
    assert f"delete {folder / 't10k-images-idx3-ubyte'} to fetch it again" in message
    assert f"identikit data --refetch --root {tmp_path}" in message


def test_truncated_gzip_says_how_to_recover(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.checksums():
        (folder / f"{name}.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")
    with pytest.raises(DataError, match=r"corrupt or truncated gzip.*identikit data --refetch"):
        data.load_mnist("train", tmp_path)


def good_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": encode_idx(rng.integers(0, 255, (20, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte": encode_idx(np.arange(20, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": encode_idx(rng.integers(0, 255, (10, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx(np.arange(10, dtype=np.uint8)),
    }


def fetchable(monkeypatch: pytest.MonkeyPatch, fetch: object) -> None:
    import hashlib

    md5 = {n: hashlib.md5(b, usedforsecurity=False).hexdigest() for n, b in good_files().items()}
    spec = data.DatasetSpec(
        name="fetched",
        files=data._MNIST_FILES,
        class_names=tuple("0123456789"),
        md5=md5,
        fetch=fetch,  # type: ignore[arg-type]
    )
    monkeypatch.setitem(data.DATASETS, "fetched", spec)


def test_data_refetch_replaces_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fetch(dest: Path) -> None:
        for name, content in good_files().items():
            (dest / name).write_bytes(content)

    fetchable(monkeypatch, fetch)
    folder = tmp_path / "fetched"
    folder.mkdir()
    for name, content in good_files().items():
        (folder / name).write_bytes(content)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"an older damaged copy")
    code, _, err = cli(capsys, "data", "--dataset", "fetched", "--root", str(tmp_path))
    assert "identikit data --refetch" in one_line_error(code, err)
    code, out, _ = cli(capsys, "data", "--dataset", "fetched", "--root", str(tmp_path), "--refetch")
    assert code == 0 and "checksums verified" in out
    assert (folder / "t10k-labels-idx1-ubyte").read_bytes() == good_files()[
        "t10k-labels-idx1-ubyte"
    ]
    assert not (tmp_path / "t10k-labels-idx1-ubyte.gz").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(good_files())


def test_failed_refetch_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fetch(dest: Path) -> None:
        raise DataError("the network is down")

    fetchable(monkeypatch, fetch)
    folder = tmp_path / "fetched"
    folder.mkdir()
    for name, content in good_files().items():
        (folder / name).write_bytes(content)
    code, _, err = cli(capsys, "data", "--dataset", "fetched", "--root", str(tmp_path), "--refetch")
    assert "the network is down" in one_line_error(code, err)
    assert sorted(p.name for p in folder.iterdir()) == sorted(good_files())


def test_bare_state_dict_says_how_to_bring_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(softmax_model().state_dict(), path)
    code, _, err = cli(
        capsys, "search", "--model", str(path), "--out", str(tmp_path / "out"), *FAST
    )
    line = one_line_error(code, err)
    assert "weights.pt is not an identikit checkpoint but a bare state_dict" in line
    assert "(weights without the architecture)" in line
    assert "torch.onnx.export(" in line


# 12. TorchScript: no warnings of identikit's own doing; ONNX is the default export.


def test_torchscript_gradient_search_prints_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "traced.pt"
    traced = torch.jit.trace(softmax_model(), torch.rand(2, 1, 28, 28))  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier = load_classifier(
            path, trust_code=True, device="cpu", backend="eager", chunk_size=64
        )
        state = initial_state(classifier, [0, 1], [1, 2])
        advance(state, make_strategy("gradient"), classifier, [Budget(20)])
    leaf = [w for w in caught if re.search("not a leaf", str(w.message))]
    assert not leaf, leaf[0].message


def test_export_defaults_to_onnx_and_help_names_trust_code(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    code, stdout, _ = cli(capsys, "export", "--model", str(checkpoint), "--out", str(out))
    assert code == 0 and "(onnx)" in stdout and out.stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-code" in text and "default: onnx" in text


def test_training_uses_the_recipes_thread_count_and_restores_it(tiny_dataset: Path) -> None:
    """The linear model trains on one thread (its batches are too small to split; a busy
    second core made two threads three times slower); the process's count is restored."""
    from identikit.models import get_architecture
    from identikit.training.trainer import train

    assert get_architecture("softmax").training.threads == 1
    seen: list[int] = []
    before = torch.get_num_threads()
    train(
        "softmax",
        dataset="tiny",
        root=tiny_dataset,
        epochs=1,
        progress=False,
        log=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen == [1]
    assert torch.get_num_threads() == before

"""Values a user can give: every out-of-range, non-finite or ill-typed one is a one-line error.

From the issue "Nothing lost, nothing run": a ``nan`` that silently disables saving, a setting
that ends in ``internal error``, a 1 KB checkpoint that asks for four million classes, training
that fails only once it is over. Each case goes through the real command line (exit 2, one
line naming the option) or the library function that the command line calls.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from identikit.base.errors import CheckpointError, IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.cli import main
from identikit.models import build_model
from identikit.models.checkpoint import load_checkpoint, save_checkpoint
from identikit.models.export import export_model
from identikit.models.preprocessing import Preprocessing
from identikit.models.training_config import TrainConfig
from identikit.strategies import STRATEGIES
from identikit.strategies.evolution import Evolution
from identikit.strategies.registry import make_strategy, option_name, parse_option, setting_types
from identikit.studies import certainty
from identikit.training import trainer as training

NAN, INF = float("nan"), float("inf")

# --------------------------------------------------------------------------- helpers


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the stderr lines that are not progress notes, of one command."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's errors leave through Parser.exit
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    notes = (": scoring with ", "measuring scoring engines")
    lines = [line for line in err.splitlines() if line and not any(n in line for n in notes)]
    return code, out, lines


def assert_one_line_error(result: tuple[int, str, list[str]], *fragments: str) -> None:
    code, _, lines = result
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert re.match(r"identikit( \w+)?: error: ", lines[0]), lines[0]
    assert "Traceback" not in lines[0] and "internal error" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def softmax_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_model("softmax").state_dict().items()}


def save_payload(path: Path, **changes: Any) -> Path:
    """A softmax checkpoint's payload with some fields changed (``None``: removed)."""
    payload: dict[str, Any] = {
        "format": "identikit-checkpoint",
        "version": 1,
        "architecture": "softmax",
        "num_classes": 10,
        "state_dict": softmax_state(),
        "metadata": {"test_accuracy": 0.5},
    }
    payload.update(changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny softmax checkpoint, and the same model exported to ONNX and TorchScript."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = build_model("softmax").eval()
    paths = {"checkpoint": folder / "tiny.pt"}
    save_checkpoint(
        paths["checkpoint"], model, architecture="softmax", metadata={"test_accuracy": 0.1}
    )
    for fmt, name in (("onnx", "tiny.onnx"), ("torchscript", "tiny.ts")):
        paths[fmt] = folder / name
        export_model(
            model,
            paths[fmt],
            fmt=fmt,
            preprocessing=Preprocessing(outputs="logits"),
            flatten=False,
            fixed_batch=False,
        )
    return paths


def search_args(models: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """A search that would take well under a second, were it not refused."""
    return [
        "search",
        "--model",
        str(models["checkpoint"]),
        "--out",
        str(out),
        "--runs",
        "1",
        "--max-queries",
        "50",
        "--digits",
        "0",
        "--no-progress",
        *extra,
    ]


# --------------------------------------------------------------------------- 1. strategy settings

# (strategy, settings, what the message must name)
BAD_SETTINGS = [
    ("evolution", {"sigma": NAN}, "--option sigma"),
    ("evolution", {"sigma": INF}, "--option sigma"),
    ("evolution", {"min_sigma": NAN}, "--option min_sigma"),
    ("evolution", {"max_sigma": INF}, "--option max_sigma"),
    ("evolution", {"min_sigma": 0.5, "max_sigma": 0.1}, "--option max_sigma"),
    ("evolution", {"candidates": True}, "candidates"),
    ("strokes", {"width": NAN}, "--option width"),
    ("strokes", {"max_length": INF}, "--option max_length"),
    ("strokes", {"min_length": NAN}, "--option min_length"),
    ("strokes", {"max_length": 1e300}, "--option max_length"),
    ("gradient", {"lr": NAN}, "--option lr"),
    ("gradient", {"tv_weight": INF}, "--option tv_weight"),
    ("gradient", {"l2_weight": NAN}, "--option l2_weight"),
    ("gradient", {"manifold_weight": -INF}, "--option manifold_weight"),
    ("gradient", {"blur_sigma": NAN}, "--option blur_sigma"),
    ("gradient", {"blur_sigma": 0.0}, "--option blur_sigma"),
    ("gradient", {"manifold_components": 0}, "--option manifold_components"),
    ("gradient", {"manifold_components": 785}, "--option manifold_components"),
    ("square", {"side": 1.5}, "--option side"),
    ("square", {"schedule_queries": 0}, "--option schedule_queries"),
    ("random-masks", {"candidates": 2.0}, "--candidates"),
]


@pytest.mark.parametrize(("strategy", "settings", "named"), BAD_SETTINGS)
def test_bad_strategy_settings_are_refused(
    strategy: str, settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(IdentikitError, match=re.escape(named)) as caught:
        make_strategy(strategy, **settings)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_float_setting_of_every_strategy_must_be_finite(strategy: str) -> None:
    floats = [k for k, kind in setting_types(STRATEGIES[strategy]).items() if kind is float]
    assert floats, f"{strategy} has no float setting to test"
    for key in floats:
        for value in (NAN, INF, -INF):
            with pytest.raises(IdentikitError, match=re.escape(option_name(key))):
                make_strategy(strategy, **{key: value})


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_class_constants_are_not_settings(strategy: str) -> None:
    settings = setting_types(STRATEGIES[strategy])
    assert "name" not in settings and "white_box" not in settings
    for constant in ("name=foo", "white_box=true"):
        with pytest.raises(IdentikitError, match="--option"):
            parse_option(strategy, constant)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(IdentikitError, match="--option sigma must be a finite number"):
        Evolution(sigma=NAN)


@pytest.mark.parametrize(
    ("strategy", "option", "named"),
    [
        ("square", "side=1.5", "--option side"),
        ("evolution", "candidates=True", "--option candidates"),
        ("gradient", "lr=fast", "--option lr"),
    ],
)
def test_options_are_parsed_by_their_declared_type(strategy: str, option: str, named: str) -> None:
    with pytest.raises(IdentikitError, match=re.escape(named)):
        parse_option(strategy, option)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--strategy", "evolution", "--option", "sigma=nan"), "--option sigma"),
        (
            ("--strategy", "evolution", "--option", "min_sigma=1", "--option", "max_sigma=0.5"),
            "--option max_sigma",
        ),
        (("--strategy", "strokes", "--option", "width=inf"), "--option width"),
        (("--strategy", "gradient", "--option", "blur_sigma=0"), "--option blur_sigma"),
        (
            ("--strategy", "gradient", "--option", "manifold_components=0"),
            "--option manifold_components",
        ),
        (("--strategy", "gradient", "--option", "white_box=true"), "--option"),
        (("--option", "name=foo"), "--option"),
        (("--strategy", "square", "--option", "side=1.5"), "--option side"),
    ],
)
def test_search_refuses_bad_settings(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    extra: tuple[str, ...],
    named: str,
) -> None:
    result = run_cli(capsys, *search_args(models, tmp_path / "sweep", *extra))
    assert_one_line_error(result, "identikit: error:", named)
    assert not (tmp_path / "sweep").exists()


# --------------------------------------------------------------------------- 2, 3, 8. flags


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--save-every", "nan"), "--save-every"),
        (("--save-every", "inf"), "--save-every"),
        (("--save-every", "0"), "--save-every"),
        (("--mean", "nan"), "--mean"),
        (("--mean", "inf"), "--mean"),
        (("--std", "nan"), "--std"),
        (("--std", "inf"), "--std"),
        (("--classes", "0"), "--classes"),
        (("--classes", "1"), "--classes"),
    ],
)
def test_search_flags_must_be_finite_and_in_range(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    extra: tuple[str, ...],
    named: str,
) -> None:
    result = run_cli(capsys, *search_args(models, tmp_path / "sweep", *extra))
    assert_one_line_error(result, "identikit search: error: argument", named)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("settings", [{"mean": NAN}, {"mean": INF}, {"std": NAN}, {"std": INF}])
def test_preprocessing_refuses_non_finite_values(settings: dict[str, Any]) -> None:
    name = next(iter(settings))
    with pytest.raises(IdentikitError, match=f"--{name} must be a finite number"):
        Preprocessing(**settings)


# --------------------------------------------------------------------------- 4. train


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--lr", "nan"), "--lr"),
        (("--lr", "inf"), "--lr"),
        (("--lr", "0"), "--lr"),
        (("--epochs", "0"), "--epochs"),
        (("--batch-size", "0"), "--batch-size"),
    ],
)
def test_train_refuses_bad_settings_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: tuple[str, ...], named: str
) -> None:
    out = tmp_path / "m.pt"
    result = run_cli(capsys, "train", "--model", "softmax", "--out", str(out), *extra)
    assert_one_line_error(result, "identikit train: error: argument", named)
    assert not out.exists()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"lr": NAN}, "--lr"),
        ({"lr": -1.0}, "--lr"),
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"epochs": 1.5}, "--epochs"),
    ],
)
def test_train_config_checks_itself(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(IdentikitError, match=named):
        TrainConfig(**settings)


def test_train_library_refuses_nan_before_reading_data(tmp_path: Path) -> None:
    # A dataset that does not exist: the learning rate must be refused before it is looked for.
    with pytest.raises(IdentikitError, match="--lr must be a finite number"):
        training.train("softmax", dataset="idx:" + str(tmp_path / "none"), lr=NAN)


def _unwritable_outputs(tmp_path: Path) -> list[tuple[Path, str]]:
    folder = tmp_path / "folder"
    folder.mkdir()
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    return [(folder, "is a folder"), (plain / "sub" / "m.pt", "is not a folder")]


def test_train_checks_out_before_training(
    capsys: pytest.CaptureFixture[str], tiny_dataset: Path, tmp_path: Path
) -> None:
    for out, why in _unwritable_outputs(tmp_path):
        args = ("train", "--model", "softmax", "--dataset", "tiny", "--root", str(tiny_dataset))
        result = run_cli(capsys, *args, "--out", str(out), "--epochs", "1", "--no-progress")
        assert_one_line_error(result, "identikit: error: --out", why)
        assert result[1] == "", "trained before refusing the output"


def test_train_library_checks_out_before_reading_data(tmp_path: Path) -> None:
    for out, why in _unwritable_outputs(tmp_path):
        with pytest.raises(IdentikitError, match=f"--out .*{why}"):
            training.train("softmax", dataset="idx:" + str(tmp_path / "none"), out=out)


def test_train_output_in_a_new_folder_is_fine(tmp_path: Path) -> None:
    assert training.check_output_file(tmp_path / "new" / "deeper" / "m.pt").name == "m.pt"
    assert not (tmp_path / "new").exists()  # checked, not made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_train_refuses_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(IdentikitError, match="cannot write there"):
            training.check_output_file(folder / "m.pt")
    finally:
        folder.chmod(0o700)


# --------------------------------------------------------------------------- 5. certainty


@pytest.mark.parametrize(
    ("samples", "fragment"),
    [
        ("0", "argument --samples"),
        ("-1", "argument --samples"),
        ("1e8", "a whole number"),
        ("100000000", "IDENTIKIT_LIMIT_SAMPLES"),
    ],
)
def test_certainty_samples(
    capsys: pytest.CaptureFixture[str], models: dict[str, Path], samples: str, fragment: str
) -> None:
    args = ("certainty", "--model", str(models["checkpoint"]), "--samples", samples)
    result = run_cli(capsys, *args)
    assert_one_line_error(result, "--samples", fragment)


def _classifier() -> Classifier:
    torch.manual_seed(0)
    return Classifier(build_model("softmax").eval())


@pytest.mark.parametrize("samples", [0, -1, True, 2.5, 10**8])
def test_max_probabilities_refuses_bad_samples(samples: Any) -> None:
    test_images = np.zeros((5, 28, 28), dtype=np.uint8)
    with pytest.raises(IdentikitError, match="samples"):
        certainty.max_probabilities(_classifier(), test_images, samples=samples)


def test_sources_drawn_in_chunks_are_one_draw() -> None:
    test_images = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    for name, make in certainty.SOURCES.items():
        whole = make(test_images, 0, 25, torch.Generator().manual_seed(3))
        generator = torch.Generator().manual_seed(3)
        parts = [
            make(test_images, first, min(7, 25 - first), generator) for first in (0, 7, 14, 21)
        ]
        assert torch.equal(whole, torch.cat(parts)), name


def test_max_probabilities_scores_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = _classifier()
    test_images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    whole = certainty.max_probabilities(classifier, test_images, samples=50, seed=1)
    batches: list[int] = []
    score = classifier.probabilities

    def counted(images: torch.Tensor) -> torch.Tensor:
        batches.append(len(images))
        return score(images)

    monkeypatch.setattr(certainty, "CHUNK", 16)
    monkeypatch.setattr(classifier, "probabilities", counted)
    chunked = certainty.max_probabilities(classifier, test_images, samples=50, seed=1)
    assert max(batches) <= 16
    assert {k: len(v) for k, v in chunked.items()} == {k: len(v) for k, v in whole.items()}
    assert len(chunked["mnist-test"]) == 20 and len(chunked["blank"]) == 1
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------- 6. model formats


@pytest.mark.parametrize("command", ["ceiling", "export"])
@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("onnx", "not a PyTorch zip file"), ("torchscript", "is TorchScript, not an identikit")],
)
def test_other_model_formats_are_named(
    capsys: pytest.CaptureFixture[str],
    models: dict[str, Path],
    tmp_path: Path,
    command: str,
    kind: str,
    fragment: str,
) -> None:
    args = [command, "--model", str(models[kind])]
    if command == "export":
        args += ["--format", "onnx", "--out", str(tmp_path / "again.onnx")]
    result = run_cli(capsys, *args)
    assert_one_line_error(result, "identikit: error:", fragment)
    assert "possibly code" not in result[2][0]


def test_a_named_pipe_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)
    assert_one_line_error(run_cli(capsys, "ceiling", "--model", str(pipe)), "named pipe")


# --------------------------------------------------------------------------- 7. checkpoint fields

BAD_PAYLOADS = [
    ({"num_classes": -1}, "'num_classes' must be at least 2"),
    ({"num_classes": 1}, "'num_classes' must be at least 2"),
    ({"num_classes": True}, "'num_classes' must be a whole number"),
    ({"num_classes": 10.0}, "'num_classes' must be a whole number"),
    ({"num_classes": [10]}, "'num_classes' must be a whole number"),
    ({"num_classes": 10**9}, "IDENTIKIT_LIMIT_CLASSES"),
    ({"num_classes": 4_000_000}, "IDENTIKIT_LIMIT_CLASSES"),
    ({"num_classes": 12}, "declares 12 classes but its output layer has 10 rows"),
    ({"state_dict": {"linear.weight": [1.0], "linear.bias": torch.zeros(10)}}, "not a named"),
    ({"state_dict": {"linear.bias": torch.zeros(10)}}, "no output layer"),
    ({"metadata": [1, 2]}, "'metadata' must be a dictionary"),
    ({"metadata": "fine"}, "'metadata' must be a dictionary"),
    ({"metadata": {"test_accuracy": "high"}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": 1.5}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": NAN}}, "'test_accuracy' must be a number in [0, 1]"),
    ({"metadata": {"test_accuracy": [0.9]}}, "'test_accuracy'"),
    ({"metadata": {"epochs": -1}}, "'epochs' must be a whole number >= 0"),
    ({"metadata": {"epochs": 2.5}}, "'epochs'"),
    ({"metadata": {"seed": "zero"}}, "'seed' must be a whole number"),
    ({"metadata": {"seed": True}}, "'seed'"),
    ({"metadata": {"precision": 16}}, "'precision' must be text"),
]


@pytest.mark.parametrize(("changes", "fragment"), BAD_PAYLOADS)
def test_checkpoint_fields_are_checked(
    tmp_path: Path, changes: dict[str, Any], fragment: str
) -> None:
    path = save_payload(tmp_path / "odd.pt", **changes)
    with pytest.raises(CheckpointError, match=re.escape(fragment)) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and "odd.pt" in str(caught.value)


def test_many_classes_are_refused_before_any_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small file whose output layer claims 4,000,000 rows through a stride-0 view: refused
    # on what it declares, before build_model would allocate 4,000,000 x 784 weights.
    huge = torch.zeros(1).expand(4_000_000, 784)
    state = {"linear.weight": huge, "linear.bias": torch.zeros(1).expand(4_000_000)}
    path = save_payload(tmp_path / "huge.pt", num_classes=4_000_000, state_dict=state)
    assert path.stat().st_size < 100_000
    built: list[str] = []
    monkeypatch.setattr("identikit.models.checkpoint.build_model", lambda *a: built.append("x"))
    with pytest.raises(CheckpointError, match="IDENTIKIT_LIMIT_CLASSES"):
        load_checkpoint(path)
    assert not built


def test_checkpoint_with_absent_optional_fields_still_loads(tmp_path: Path) -> None:
    path = save_payload(tmp_path / "bare.pt", metadata={"test_accuracy": None, "note": [1]})
    _, meta = load_checkpoint(path)
    assert meta["num_classes"] == 10 and meta["note"] == [1]


def test_ceiling_on_a_bad_checkpoint_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = save_payload(tmp_path / "odd.pt", num_classes=10**9)
    result = run_cli(capsys, "ceiling", "--model", str(path))
    assert_one_line_error(result, "identikit: error:", "IDENTIKIT_LIMIT_CLASSES")

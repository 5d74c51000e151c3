"""Options shared by the commands: the scoring engine said, --precision only where candidates are
ranked and refused for white-box strategies, patience in queries, an empty --out refused, and
model conventions (per-channel mean and std, layout, input shape) parsed or refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from identikit.base.shapes import ImageShape
from identikit.cli import build_parser, main
from identikit.sweeps.experiment import SweepConfig
from tests.helpers import EAGER_CPU, assert_refused, run_main, search_args, the_error_line


def test_search_patience_default_is_in_queries() -> None:
    args = build_parser().parse_args(["search", "--model", "m.pt", "--out", "o"])
    assert args.patience == 25_000 == SweepConfig().patience


def test_gradient_search_says_pytorch_computes_the_gradients(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        capsys,
        "search",
        "--model",
        str(model_file),
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
        *EAGER_CPU,
    )
    assert code == 0
    assert "softmax.pt: gradients with PyTorch (fp32, eager" in err
    assert "scoring with" not in err


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_low_precision_is_refused_for_a_white_box_strategy(
    precision: str, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        capsys,
        "search",
        "--model",
        str(model_file),
        "--out",
        str(tmp_path / "out"),
        "--strategy",
        "gradient",
        "--precision",
        precision,
        *EAGER_CPU,
    )
    line = the_error_line(code, err)
    assert f"--precision {precision} does not apply to --strategy gradient" in line
    assert "fp32 with PyTorch" in line
    assert not (tmp_path / "out").exists()


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


def test_an_empty_out_is_refused(
    model_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = search_args(model_file, tmp_path)
    args[args.index("--out") + 1] = ""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []  # nothing written into the current folder


def test_model_conventions_parse_per_channel_values_and_a_shape() -> None:
    conventions = ["--mean", "0.485,0.456,0.406", "--std", "0.5", "--layout", "nhwc"]
    args = build_parser().parse_args(
        ["search", "--model", "m.onnx", "--out", "o", *conventions, "--input-shape", "3,32,32"]
    )
    assert args.mean == (0.485, 0.456, 0.406) and args.std == 0.5 and args.layout == "nhwc"
    assert args.input_shape == ImageShape(3, 32, 32)
    defaults = build_parser().parse_args(["search", "--model", "m.onnx", "--out", "o"])
    assert defaults.mean == 0.0 and defaults.layout is None and defaults.input_shape is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--input-shape", "3,32"), "argument --input-shape: expected C,H,W"),
        (("--input-shape", "0,2,2"), "argument --input-shape: must be at least 1, got '0'"),
        (("--input-shape", "3,x,2"), "argument --input-shape: expected a whole number"),
        (("--mean", "0.5,nan"), "argument --mean: must be a finite number, got 'nan'"),
        (("--std", "0.5,0"), "argument --std: must be a finite number > 0, got '0'"),
        (("--layout", "chw"), "argument --layout: invalid choice"),
    ],
)
def test_malformed_conventions_are_refused_in_one_line(
    extra: tuple[str, ...], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(run_main(capsys, "search", "--model", "m.onnx", "--out", "o", *extra), fragment)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--gpus-per-task", "1.5"), "argument --gpus-per-task: must be a number in (0, 1]"),
        (("--retries", "-1"), "argument --retries"),
        (("--cpus-per-task", "0"), "argument --cpus-per-task"),
        (("--cluster", "slurm"), "argument --cluster: invalid choice"),
    ],
)
def test_malformed_cluster_options_are_refused_in_one_line(
    extra: tuple[str, ...], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_refused(run_main(capsys, "search", "--model", "m.pt", "--out", "o", *extra), fragment)


def test_an_address_without_a_cluster_is_refused(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = search_args(tiny_model, tmp_path / "out", "--address", "127.0.0.1:6379")
    assert_refused(run_main(capsys, *args), "--address joins a Ray cluster: add --cluster ray")
    assert not (tmp_path / "out").exists()


# --- Sizes asked for on the command line, bounded before anything is allocated ---------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (
            ("--input-shape", "3,100000,100000"),
            ("argument --input-shape", "10,000,000,000 pixels", "IDENTIKIT_LIMIT_IMAGE_PIXELS"),
        ),
        (
            ("--input-shape", "1000000,100,100"),
            ("argument --input-shape", "values per image", "IDENTIKIT_LIMIT_IMAGE_VALUES"),
        ),
        (("--chunk-size", str(10**12)), ("argument --chunk-size: must be at most 1,048,576",)),
        (("--chunk-size", "0"), ("argument --chunk-size: must be at least 1",)),
    ],
)
def test_sizes_beyond_the_limits_are_refused_in_one_line(
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    fragments: tuple[str, ...],
) -> None:
    """Before the model is read: a dynamic ONNX model would otherwise be probed with 120 GB
    images, and a chunk of 10^12 would run a sweep whose results.json then read as edited."""
    out = tmp_path / "sweep"
    result = run_main(capsys, "search", "--model", str(models["onnx"]), "--out", str(out), *extra)
    assert_refused(result, *fragments)
    assert not out.exists()


def test_the_image_limit_can_be_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    parse = build_parser().parse_args
    monkeypatch.setenv("IDENTIKIT_LIMIT_IMAGE_PIXELS", str(10**10))
    monkeypatch.setenv("IDENTIKIT_LIMIT_IMAGE_VALUES", str(3 * 10**10))
    args = parse(["search", "--model", "m.onnx", "--out", "o", "--input-shape", "3,100000,100000"])
    assert args.input_shape == ImageShape(3, 100_000, 100_000)
    assert parse(["search", "--model", "m", "--out", "o", "--chunk-size", "1048576"]).chunk_size


@pytest.mark.parametrize("command", ["search", "compare", "reconstruct"])
def test_classes_default_to_all_and_digits_is_their_older_name(command: str) -> None:
    """Issue 29: --classes chooses the classes to search, every class of the model unless it
    says otherwise; --digits, its older name, fills the same option; the number of classes
    the model must return is --num-classes."""
    parser = build_parser()
    base = [command, "--model", "m.pt", "--out", "o"]
    assert parser.parse_args(base).classes is None
    assert parser.parse_args([*base, "--classes", "0,3"]).classes == "0,3"
    assert parser.parse_args([*base, "--digits", "0,3"]).classes == "0,3"
    assert parser.parse_args([*base, "--num-classes", "5"]).num_classes == 5


def test_commands_without_a_sweep_keep_classes_as_the_count() -> None:
    """evaluate and certainty choose no classes: there --classes is still the number of
    classes the model must return, as it was (--num-classes on every command)."""
    parser = build_parser()
    args = parser.parse_args(["certainty", "--model", "m.pt", "--classes", "12"])
    assert args.num_classes == 12
    args = parser.parse_args(["certainty", "--model", "m.pt", "--num-classes", "12"])
    assert args.num_classes == 12


def test_class_names_come_from_a_list_or_a_file_of_one_a_line(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    # ImageNet's names hold commas; the last line may end without a newline
    names.write_text("tench, Tinca tinca\ngoldfish\r\ngreat white shark", encoding="utf-8")
    parse = build_parser().parse_args
    args = parse(["search", "--model", "m.onnx", "--out", "o", "--class-names", f"@{names}"])
    assert args.class_names == ("tench, Tinca tinca", "goldfish", "great white shark")
    names.write_text("a\nb\n", encoding="utf-8")  # one final newline is no empty name
    args = parse(["search", "--model", "m.onnx", "--out", "o", "--class-names", f"@{names}"])
    assert args.class_names == ("a", "b")
    args = parse(["search", "--model", "m.onnx", "--out", "o", "--class-names", "cat,dog"])
    assert args.class_names == ("cat", "dog")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a\n\nc\n", "line 2 is empty; every class needs a name"),
        (b"a\n\xff\xfe\n", "is not UTF-8 text"),
        (None, "not found"),
    ],
)
def test_a_bad_class_names_file_is_refused_in_one_line(
    tmp_path: Path, content: bytes | None, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    if content is not None:
        names.write_bytes(content)
    result = run_main(
        capsys, "search", "--model", "m.onnx", "--out", "o", "--class-names", f"@{names}"
    )
    assert_refused(result, "argument --class-names", fragment)


def test_an_empty_class_name_or_too_many_names_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_main(capsys, "search", "--model", "m.onnx", "--out", "o", "--class-names", "a,,c")
    assert_refused(result, "argument --class-names: name 2 is empty")
    monkeypatch.setenv("IDENTIKIT_LIMIT_CLASSES", "2")
    result = run_main(capsys, "search", "--model", "m.onnx", "--out", "o", "--class-names", "a,b,c")
    assert_refused(result, "argument --class-names", "IDENTIKIT_LIMIT_CLASSES")

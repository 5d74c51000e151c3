"""The model commands (train, evaluate, export): their help, their checks of settings before any
work, real training on MNIST, and a colour checkpoint exported channels last, normalised per
channel, and evaluated as it was."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from identikit.base.shapes import ImageShape
from identikit.classifier import load_classifier
from identikit.cli import main
from identikit.models import build_model
from identikit.models.checkpoint import save_checkpoint
from identikit.models.export import CLASS_NAMES_KEY, onnx_bytes
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing
from tests.helpers import assert_clean_error, assert_refused, run_cli, run_main


def test_train_precision_is_the_training_arithmetic(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "the arithmetic of training" in " ".join(capsys.readouterr().out.split())


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
    result = run_main(capsys, "train", "--model", "softmax", "--out", str(out), *extra)
    assert_refused(result, "identikit train: error: argument", named)
    assert not out.exists()


def test_evaluate_says_which_axis_is_the_true_class(
    model_file: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(
        capsys,
        "evaluate",
        "--model",
        str(model_file),
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


def test_export_defaults_to_onnx_and_help_names_trust_code(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    code, stdout, _ = run_main(capsys, "export", "--model", str(model_file), "--out", str(out))
    assert code == 0 and "(onnx)" in stdout and out.stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-code" in text and "default: onnx" in text


@pytest.mark.mnist
def test_softmax_one_epoch_on_real_mnist(mnist_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "softmax.pt"
    runs = [
        run_cli(
            "train",
            "--model",
            "softmax",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--root",
            str(mnist_root),
            "--json",
            "--seed",
            "7",
            "--device",  # the same seed, the same model: on the CPU (PyTorch's promise there)
            "cpu",
        )
        for _ in range(2)
    ]
    summaries = []
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
        summaries.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = summaries[0]
    assert summary["model"] == "softmax" and summary["epochs"] == 1
    assert summary["test_accuracy"] >= 0.90
    assert summaries[1]["test_accuracy"] == summary["test_accuracy"]  # same seed, same accuracy
    payload = torch.load(out, weights_only=True)
    assert payload["architecture"] == "softmax"
    assert payload["metadata"]["test_accuracy"] == summary["test_accuracy"]
    assert set(payload["metadata"]["data_checksums"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    evaluated = run_cli(
        *("evaluate", "--model", str(out), "--root", str(mnist_root), "--json", "--device", "cpu")
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert report["accuracy"] == summary["test_accuracy"]
    assert len(report["per_class"]) == 10
    assert sum(map(sum, report["confusion"])) == 10000


def test_train_and_evaluate_on_coloured_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shapes.pt"
    trained = ["train", "--model", "softmax", "--dataset", "shapes", "--epochs", "1"]
    trained += ["--device", "cpu"]
    code, stdout, _ = run_main(capsys, *trained, "--out", str(out), "--json", "--no-progress")
    assert code == 0
    accuracy = json.loads(stdout.strip().splitlines()[-1])["test_accuracy"]
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["input_shape"] == [3, 32, 32]
    assert checkpoint["metadata"]["class_names"][:2] == ["circle", "square"]
    evaluated = ("evaluate", "--model", str(out), "--dataset", "shapes", "--backend", "eager")
    code, stdout, _ = run_main(capsys, *evaluated, "--json", "--device", "cpu")
    assert code == 0
    assert json.loads(stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(accuracy)


def test_export_a_colour_checkpoint_channels_last_and_evaluate_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = ImageShape(3, 32, 32)
    checkpoint = tmp_path / "colour.pt"
    torch.manual_seed(0)
    save_checkpoint(
        checkpoint,
        build_model("colour-cnn", 10, shape),
        architecture="colour-cnn",
        metadata={},
        input_shape=shape,
    )
    out = tmp_path / "colour.onnx"
    norm = ("--mean", "0.49,0.48,0.45", "--std", "0.25,0.24,0.26")
    code, stdout, _ = run_main(
        capsys, "export", "--model", str(checkpoint), "--out", str(out), "--layout", "nhwc", *norm
    )
    assert code == 0
    assert stdout.strip().endswith(
        "use it with: --input-range 0,1 --mean 0.49,0.48,0.45 --std 0.25,0.24,0.26 "
        "--layout nhwc --outputs logits"
    )
    accuracies = []
    for model, extra in ((checkpoint, ()), (out, norm)):
        code, stdout, err = run_main(
            capsys, "evaluate", "--model", str(model), "--dataset", "shapes", "--json", *extra,
            "--device", "cpu",  # ONNX Runtime's: the same sums on both sides, argmaxes alike
        )  # fmt: skip
        assert code == 0, err
        accuracies.append(json.loads(stdout.strip().splitlines()[-1])["accuracy"])
    assert "colour.onnx: input is NHWC (Nx32x32x3), read as layout nhwc" in err
    assert accuracies[0] == accuracies[1]
    wrong = run_main(
        capsys, "evaluate", "--model", str(out), "--dataset", "shapes", "--mean", "1,2"
    )
    assert_clean_error(wrong[0], wrong[2], "--mean has 2 values", "(3x32x32) have 3 channels")
    mismatched = run_main(
        capsys, "evaluate", "--model", str(out), "--dataset", "shapes", "--input-shape", "3,28,28"
    )
    assert_clean_error(
        mismatched[0], mismatched[2], "colour.onnx: --input-shape 3x28x28", "Nx32x32x3"
    )


def test_evaluate_shows_class_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The confusion table's class names, from a dataset file: escapes shown, never sent."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(
        data,
        images=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
        labels=np.arange(12) % 2,
        class_names=np.array(["a\x1b[2J", "b\x1b]0;x\x07"]),
    )
    shape = ImageShape(1, 8, 8)
    model = tmp_path / "m.pt"
    torch.manual_seed(0)
    net = build_model("softmax", 2, shape)
    save_checkpoint(model, net, architecture="softmax", metadata={}, input_shape=shape)
    code, out, err = run_main(
        capsys, "evaluate", "--model", str(model), "--dataset", f"npz:{data}", "--device", "cpu"
    )
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "a\\x1b" in out and "b\\x1b" in out


def _two_class_model(path: Path) -> Path:
    """An untrained two-class softmax checkpoint for 1 x 8 x 8 images."""
    shape = ImageShape(1, 8, 8)
    torch.manual_seed(0)
    net = build_model("softmax", 2, shape)
    save_checkpoint(path, net, architecture="softmax", metadata={}, input_shape=shape)
    return path


def _npz(path: Path, count: int, *, test: int = 0) -> Path:
    """``count`` random 8 x 8 images of two classes, and ``test`` more as a test split."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
    if not test:
        np.savez(path, images=images, labels=np.arange(count) % 2)
        return path
    test_images = rng.integers(0, 256, (test, 8, 8), dtype=np.uint8)
    np.savez(
        path,
        images=images,
        labels=np.arange(count) % 2,
        test_images=test_images,
        test_labels=np.arange(test) % 2,
    )
    return path


def test_evaluate_says_how_many_images_it_scored_and_from_which_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: an npz without a test split scored a held-out sixth (17 of 100 images) and
    said only "test"; the JSON did not say how many images either."""
    model = str(_two_class_model(tmp_path / "m.pt"))
    held = f"npz:{_npz(tmp_path / 'held.npz', 100)}"
    given = f"npz:{_npz(tmp_path / 'given.npz', 40, test=30)}"
    code, out, err = run_main(capsys, "evaluate", "--model", model, "--dataset", held)
    assert code == 0, err
    assert "on 17 images held out of its 100 (about 1/6, at random: it has no test split)" in out
    code, out, err = run_main(capsys, "evaluate", "--model", model, "--dataset", held, "--json")
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["split"] == "held-out" and record["images"] == 17
    assert record["held_out_of"] == 100 and sum(map(sum, record["confusion"])) == 17
    code, out, err = run_main(capsys, "evaluate", "--model", model, "--dataset", given)
    assert code == 0, err
    assert "on its test split of 30 images" in out and "held out" not in out
    code, out, err = run_main(capsys, "evaluate", "--model", model, "--dataset", given, "--json")
    record = json.loads(out.strip().splitlines()[-1])
    assert (record["split"], record["images"]) == ("test", 30) and "held_out_of" not in record


def test_evaluate_shows_the_class_names_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: --class-names was accepted and ignored; the table showed the dataset's 0, 1."""
    model = str(_two_class_model(tmp_path / "m.pt"))
    data = f"npz:{_npz(tmp_path / 'd.npz', 60)}"
    evaluated = ("evaluate", "--model", model, "--dataset", data)
    code, out, err = run_main(capsys, *evaluated, "--class-names", "cat,dog")
    assert code == 0, err
    rows = out.splitlines()
    assert rows[2].split() == ["true", "accuracy", "cat", "dog"]
    assert rows[3].split()[0] == "cat" and rows[4].split()[0] == "dog"
    code, out, err = run_main(capsys, *evaluated, "--class-names", "cat,dog", "--json")
    assert json.loads(out.strip().splitlines()[-1])["class_names"] == ["cat", "dog"]
    code, out, err = run_main(capsys, *evaluated, "--json")  # no names: the dataset's numbers
    assert json.loads(out.strip().splitlines()[-1])["class_names"] == ["0", "1"]


def test_evaluate_help_takes_any_model_file(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "--model MODEL  checkpoint file", though ONNX and TorchScript files load too."""
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "model file: an identikit checkpoint, TorchScript (with --trust-code) or ONNX" in text


# --- export: a model of any convention, written in identikit's ---------------------------------

REAL_MODELS = Path(__file__).resolve().parents[2] / "shared" / "real-models" / "cifar10"
IMAGENET_NORM = ("--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")


class _Block(nn.Module):
    """A colour network that takes NHWC inputs: convolutions with batch norm and a residual
    add, as published classifiers are written."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.inner = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.inner_norm = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.stem(inputs.permute(0, 3, 1, 2))))
        x = torch.relu(x + self.inner_norm(self.inner(x)))  # the residual add
        return torch.softmax(self.head(x.mean((2, 3))), dim=1)  # probabilities out


def _nhwc_model() -> nn.Module:
    torch.manual_seed(3)
    model = _Block()
    for norm in (model.norm, model.inner_norm):  # statistics of their own, not 0 and 1
        assert norm.running_mean is not None and norm.running_var is not None
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _batch_norms(path: Path) -> int:
    import onnx

    return sum(node.op_type == "BatchNormalization" for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("kind", ["torchscript", "onnx", "onnx-batch-of-1"])
def test_export_writes_a_model_of_any_convention_in_identikits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """An NHWC, normalised, probabilities-out model (TorchScript or ONNX, a batch of any size
    or of 1) exported with its flags: the file is loaded without any and scores as the source
    does with them, batch norms kept, class names in its metadata."""
    model, example = _nhwc_model(), torch.rand(1, 16, 16, 3)
    source = tmp_path / ("m.ts" if kind == "torchscript" else "m.onnx")
    if kind == "torchscript":
        torch.jit.save(torch.jit.trace(model, example), str(source))  # type: ignore[no-untyped-call]
    else:
        source.write_bytes(onnx_bytes(model, example, fixed_batch=kind == "onnx-batch-of-1"))
    flags = ("--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.3", "--outputs", "probabilities")
    out = tmp_path / "ours.onnx"
    code, stdout, err = run_main(
        capsys, "export", "--model", str(source), "--out", str(out), "--trust-code",
        "--input-shape", "3,16,16", "--layout", "nhwc", *flags, "--class-names", "a,b,c,d,e",
    )  # fmt: skip
    assert code == 0, err
    assert "in identikit's convention" in stdout and "without convention flags" in stdout
    conventions = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), layout="nhwc")
    theirs = load_classifier(
        source,
        device="cpu",
        preprocessing=replace(conventions, outputs="probabilities"),
        expect=Expected(input_shape=ImageShape(3, 16, 16)),
        trust_code=True,
    )
    ours = load_classifier(out, device="cpu")  # no flags at all
    # log p of probabilities out: logits that happen to be log-probabilities, and read so.
    assert ours.info.input_shape == ImageShape(3, 16, 16)
    assert ours.outputs in ("logits", "log-probabilities")
    assert ours.preprocessing.is_identity
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    difference = ours.log_probabilities(images) - theirs.log_probabilities(images)
    assert difference.abs().max() <= 1e-4
    if kind == "torchscript":
        assert _batch_norms(out) == 2  # not folded into the convolutions
    recorded = {p.key: p.value for p in __import__("onnx").load(str(out)).metadata_props}
    assert json.loads(recorded[CLASS_NAMES_KEY]) == ["a", "b", "c", "d", "e"]


def test_export_of_a_torchscript_model_refuses_what_only_a_checkpoint_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "m.ts"
    scripted = torch.jit.trace(_nhwc_model(), torch.rand(1, 16, 16, 3))  # type: ignore[no-untyped-call]
    torch.jit.save(scripted, str(source))
    out = tmp_path / "out.onnx"
    for extra, named in ((("--flatten",), "--flatten"), (("--format", "torchscript"), "--format")):
        result = run_main(
            capsys, "export", "--model", str(source), "--out", str(out), "--trust-code",
            "--input-shape", "3,16,16", "--layout", "nhwc", *extra,
        )  # fmt: skip
        assert_refused(result, "identikit: error:", named)
    assert not out.exists()
    result = run_main(capsys, "export", "--model", str(source), "--out", str(out))
    assert_refused(result, "identikit: error:", "--trust-code")


@pytest.mark.skipif(
    not (REAL_MODELS / "resnet20.torchscript.pt").is_file(),
    reason="the shared real models (../shared/real-models) are not here",
)
def test_the_real_cifar_resnet20_exports_to_a_flag_free_onnx_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The published ResNet-20 (ImageNet mean and std, TorchScript) exported: ONNX Runtime's
    logits on the flag-free file are the TorchScript model's with its flags, on real images."""
    import onnxruntime

    torchscript = REAL_MODELS / "resnet20.torchscript.pt"
    out = tmp_path / "resnet20.onnx"
    code, _, err = run_main(
        capsys, "export", "--model", str(torchscript), "--trust-code", "--input-shape",
        "3,32,32", *IMAGENET_NORM, "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    real = np.load(REAL_MODELS / "test-1000.npz")["images"][::50]  # 20 real images
    pixels = torch.from_numpy(real).float().div(255).permute(0, 3, 1, 2).contiguous()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    module = torch.jit.load(str(torchscript), map_location="cpu").eval()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        expected = module((pixels - mean) / std).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": pixels.numpy()})[0]
    assert np.abs(logits - expected).max() <= 1e-4
    assert _batch_norms(out) == 19  # every batch norm of the network kept

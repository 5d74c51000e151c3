"""The Classifier: the one thing a search strategy sees of a model.

It maps pixel images in [0, 1], shape (N, 1, 28, 28), to class (log-)probabilities, scores them
in chunks with the engine chosen for the machine (see :mod:`identikit.engines`), and counts
every image it scores (``queries``), so that every strategy is compared on the same meter.

Two paths: :meth:`Classifier.log_probabilities` is always float32; :meth:`Classifier.score`,
which searches use for their candidates, runs at the chosen precision (bf16 or int8), and a
search re-scores each candidate it keeps with :meth:`log_probabilities`, so every recorded
confidence is a float32 value.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from identikit.base.device import resolve_device
from identikit.base.errors import IdentikitError, first_line
from identikit.base.limits import CLASSES, MODEL_BYTES
from identikit.base.safe_files import display_name, read_regular
from identikit.data.datasets import default_root
from identikit.engines.precision import check_precision
from identikit.engines.quantize import calibration_pixels
from identikit.engines.scorers import Scorer, module_digest, torch_scorer
from identikit.engines.tuning import Choice, Target, choose
from identikit.models.checkpoint import load_checkpoint
from identikit.models.onnx_model import OnnxModel
from identikit.models.preprocessing import Preprocessing, detect_output_kind, to_log_probabilities

# Images per forward pass. On a 2-core CPU the tutorial CNN scores fastest at about 128 images
# per batch in channels_last layout (6,400 images/s, against 4,000 at 500: larger batches spill
# the caches); GPUs want thousands.
CPU_CHUNK = 128
CUDA_CHUNK = 8192
ONNX_CHUNK = 512


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


def _probe_pixels(random: int, *, seed: int) -> torch.Tensor:
    """Probe images: a blank one, a gray one and ``random`` uniform-noise ones (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            torch.zeros(1, 1, 28, 28),
            torch.full((1, 1, 28, 28), 0.5),
            torch.rand(random, 1, 28, 28, generator=generator),
        ]
    )


class Classifier:
    """A model wrapped as a query-counting probability oracle over pixel images in [0, 1].

    Args:
        model: a torch module (or TorchScript module, or any callable such as an ONNX model)
            from model inputs (N, 1, 28, 28) to outputs (N, classes).
        preprocessing: how pixels become the model's inputs and what its outputs mean
            (outputs detected when not given; see :attr:`detected_outputs`).
        device: where to run a torch model.
        chunk_size: images per forward pass (default: 128 on CPU, 8192 on CUDA, 512 for ONNX
            Runtime, or the measured best with a backend).
        name: how results and messages refer to the model.
        sha256: hash of the model file, recorded in results.
        classes: the number of classes the model must return, when known.
        class_names: names of the classes, for tables and reports.
        backend: the engine that scores (see :mod:`identikit.engines`): ``auto`` measures
            them on this machine and takes the fastest (cached), a name takes that one, None
            takes PyTorch channels_last on CPU (eager on GPUs) without measuring.
        precision: ``fp32``, ``bf16`` or ``int8`` for :meth:`score`.
        cache_dir: where measured choices and exported models are kept (default: under
            :func:`identikit.data.datasets.default_root`).
        log: receives a line when engines are measured.
        remeasure: measure the engines again even when a choice is cached.
    """

    def __init__(
        self,
        model: Model,
        *,
        preprocessing: Preprocessing | None = None,
        device: torch.device | str = "cpu",
        chunk_size: int | None = None,
        name: str = "model",
        sha256: str | None = None,
        classes: int | None = None,
        class_names: Sequence[str] | None = None,
        backend: str | None = None,
        precision: str = "fp32",
        cache_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
        remeasure: bool = False,
    ) -> None:
        self.device = torch.device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.preprocessing = preprocessing or Preprocessing()
        with _quiet_module_moves():
            self.module = model.to(self.device).eval() if isinstance(model, nn.Module) else None
        if self.module is not None and self.device.type == "cpu":
            # NHWC convolutions are about 1.5x faster on CPU; layers without 4-D weights ignore it.
            with contextlib.suppress(RuntimeError, AttributeError), _quiet_module_moves():
                self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model: Callable[[torch.Tensor], torch.Tensor] = self.module or model
        if self.module is None:
            if precision == "bf16":
                raise IdentikitError(
                    f"--precision bf16: ONNX Runtime scores {name} in fp32 or int8"
                )
            # ONNX Runtime, unlike PyTorch's CPU convolutions, gains from batches of hundreds.
            default, default_chunk = "onnx", ONNX_CHUNK
        elif self.device.type == "cuda":
            default, default_chunk = "eager", CUDA_CHUNK
        else:
            default, default_chunk = "channels_last", CPU_CHUNK
        # The float32 path: the model as given (channels_last on CPU), until a backend is chosen.
        self.exact = Scorer(
            default, "fp32", chunk_size or default_chunk, torch.get_num_threads(), self.model
        )
        self.name = name
        self.sha256 = sha256
        # What results record about the model beyond its hash (architecture, parameters, test
        # accuracy), so that a report never has to open the model file to describe it.
        self.card: dict[str, Any] = {}
        self.queries = 0
        self.num_classes, self.outputs = self._probe()
        self.detected_outputs = self.preprocessing.outputs is None
        if classes is not None and classes < 2:
            raise IdentikitError(f"--classes must be at least 2, got {classes}")
        if classes is not None and classes != self.num_classes:
            raise IdentikitError(f"{name} returns {self.num_classes} classes, expected {classes}")
        self.class_names = list(class_names or [str(c) for c in range(self.num_classes)])
        if len(self.class_names) != self.num_classes:
            raise IdentikitError(
                f"{len(self.class_names)} class names for a model of {self.num_classes} classes"
            )
        with _quiet_module_moves():  # engines are built on copies of the module
            self.scorer, self.choice = self._choose_scorer(
                backend, chunk_size, cache_dir, log, remeasure
            )
        if precision == "fp32":
            self.exact = self.scorer

    @property
    def chunk_size(self) -> int:
        """Images per forward pass of :meth:`score`."""
        return self.scorer.chunk_size

    @property
    def rescores(self) -> bool:
        """Whether searches must re-score kept candidates in float32 (bf16 or int8 scoring)."""
        return self.precision != "fp32"

    def _choose_scorer(
        self,
        backend: str | None,
        chunk_size: int | None,
        cache_dir: Path | None,
        log: Callable[[str], None] | None,
        remeasure: bool,
    ) -> tuple[Scorer, Choice]:
        if backend is None and self.precision == "int8":
            backend, chunk_size = "onnx", chunk_size or ONNX_CHUNK  # int8 runs on ONNX Runtime
        if backend is None:
            if self.precision == "fp32":
                scorer = self.exact
            else:
                assert self.module is not None  # bf16 is refused for ONNX models before
                scorer = torch_scorer(
                    self.module,
                    self.exact.backend,
                    precision=self.precision,
                    device=self.device,
                    chunk_size=self.exact.chunk_size,
                    threads=self.exact.threads,
                )
            return scorer, Choice(
                scorer.backend, self.precision, scorer.chunk_size, scorer.threads, how="default"
            )

        onnx_path = getattr(self.model, "path", None) if self.module is None else None
        if self.module is not None:
            signature = module_digest(self.module, weights=False)
        else:
            signature = self.sha256 or str(onnx_path)
        pixels = _probe_pixels(62, seed=1).to(self.device)
        target = Target(
            module=self.module,
            onnx_path=Path(onnx_path) if onnx_path is not None else None,
            device=self.device,
            reference=self._reference,
            probabilities=lambda out: to_log_probabilities(out, self.outputs).exp(),
            probes=self.preprocessing.to_model(pixels),
            signature=signature,
            cache_dir=cache_dir or default_root() / "backends",
            calibration=self.preprocessing.to_model(calibration_pixels().to(self.device))
            if self.precision == "int8"
            else None,
            name=self.name,
        )
        return choose(
            target,
            backend=backend,
            precision=self.precision,
            chunk_size=chunk_size,
            log=log,
            remeasure=remeasure,
        )

    @torch.inference_mode()
    def _reference(self, inputs: torch.Tensor) -> torch.Tensor:
        """Float32 outputs of the model as given, which every engine is checked against."""
        return self.model(inputs).float()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str = "auto",
        chunk_size: int | None = None,
        backend: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> Classifier:
        """A Classifier for an identikit checkpoint file."""
        return load_classifier(path, device=device, chunk_size=chunk_size, backend=backend, log=log)

    @torch.inference_mode()
    def _probe(self) -> tuple[int, str]:
        """The number of classes and the kind of outputs, from a few probe images."""
        probes = _probe_pixels(2, seed=0).to(self.device)
        try:
            out = self._raw(probes)
        except IdentikitError:
            raise
        except Exception as exc:  # whatever the user's model raises on a well-formed input
            raise IdentikitError(
                f"{self.name} fails on images of shape (N, 1, 28, 28): "
                f"{first_line(exc, limit=1000)}"
            ) from None
        if out.dim() != 2 or out.shape[0] != 4 or out.shape[1] < 2:
            raise IdentikitError(
                f"{self.name}: expected outputs of shape (N, classes), got {tuple(out.shape)}"
            )
        CLASSES.check(int(out.shape[1]), f"{self.name}'s outputs")
        return int(out.shape[1]), self.preprocessing.outputs or detect_output_kind(out)

    def _check_finite(self, values: torch.Tensor) -> None:
        if not torch.isfinite(values).all():
            raise IdentikitError(f"{self.name} returned NaN or infinite outputs")

    def _raw(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocessing.to_model(pixels))

    def log_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, classes), float32, on the Classifier's device.

        Log-probabilities keep their resolution near certainty (1 - 1e-9 is still distinct from
        1 - 1e-8), where probabilities in float32 round to 1.
        """
        return self._log_probabilities(images, self.exact)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Log-probabilities at the chosen precision: what searches rank candidates by.

        In fp32 the same as :meth:`log_probabilities`; in bf16 (about three significant digits)
        or int8 (a quantized copy) faster and coarser, so a search re-scores what it keeps with
        :meth:`log_probabilities`.
        """
        return self._log_probabilities(images, self.scorer)

    @torch.inference_mode()
    def _log_probabilities(self, images: torch.Tensor, scorer: Scorer) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise IdentikitError(
                f"expected images of shape (N, 1, 28, 28), got {tuple(images.shape)}"
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

    def value_and_grad(
        self,
        images: torch.Tensor,
        objective: Callable[[torch.Tensor, torch.Tensor, slice], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective values (N,) and their gradients with respect to the pixels.

        ``objective(x, log_probabilities, rows)`` gets a chunk of images (with gradients
        enabled), the model's log-probabilities for them and the chunk's rows within
        ``images``; it returns one value per image. Each image counts as one query. Only for
        models that give gradients (white-box strategies).
        """
        if self.module is None:
            raise IdentikitError(
                f"{self.name} gives no gradients (an ONNX model): use a black-box strategy"
            )
        values, grads = [], []
        size = self.exact.chunk_size
        for start in range(0, images.shape[0], size):
            rows = slice(start, min(start + size, images.shape[0]))
            x = images[rows].detach().to(self.device, torch.float32).requires_grad_(True)
            with torch.enable_grad():
                log_probabilities = to_log_probabilities(self._raw(x), self.outputs)
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

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for pixel images in [0, 1]."""
        return self.log_probabilities(images).exp()


TORCHSCRIPT_WARNING = (
    "is TorchScript: a program, which runs with your permissions when it is loaded"
)


def model_format(path: Path, data: bytes) -> str:
    """``checkpoint``, ``torchscript`` or ``onnx``, from the file's content ``data``."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            names = []
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "checkpoint"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    raise IdentikitError(
        f"{path}: not an identikit checkpoint, a TorchScript file or an ONNX (.onnx) model"
    )


def load_classifier(
    path: str | os.PathLike[str],
    *,
    device: str = "auto",
    preprocessing: Preprocessing | None = None,
    chunk_size: int | None = None,
    classes: int | None = None,
    class_names: Sequence[str] | None = None,
    backend: str | None = None,
    precision: str = "fp32",
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    remeasure: bool = False,
    trust_code: bool = False,
) -> Classifier:
    """A Classifier for a model file: identikit checkpoint, TorchScript or ONNX.

    The file is read once: its hash (recorded in results) is the hash of the very bytes the
    model is built from. TorchScript files are programs, so they load only with
    ``trust_code`` (the CLI's ``--trust-code``), and ``log`` is told. ``backend``,
    ``precision``, ``cache_dir``, ``log`` and ``remeasure`` are :class:`Classifier`'s.
    """
    file = Path(path)
    data = read_regular(file, limit=MODEL_BYTES)
    kind = model_format(file, data)
    name = display_name(file)
    torch_device = resolve_device(device)
    model: Model
    card: dict[str, Any] = {
        "architecture": {"torchscript": "TorchScript", "onnx": "ONNX"}.get(kind)
    }
    if kind == "checkpoint":
        model, meta = load_checkpoint(file, data=data)
        if classes is None:
            classes = int(meta["num_classes"])
        card = {
            "architecture": meta["architecture"],
            "parameters": sum(p.numel() for p in model.parameters()),
            **{k: meta[k] for k in ("test_accuracy", "epochs", "seed") if k in meta},
        }
    elif kind == "torchscript":
        if not trust_code:
            raise IdentikitError(
                f"{name} {TORCHSCRIPT_WARNING}; identikit loads it only if you pass "
                "--trust-code (never for a file you did not make or do not trust)"
            )
        if log is not None:
            log(
                f"{name}: loading TorchScript, whose code runs with your permissions (--trust-code)"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated,
                # but it is what many users' models come as.
                model = torch.jit.load(io.BytesIO(data), map_location=torch_device)  # type: ignore[no-untyped-call]
        except (RuntimeError, ValueError, OSError) as exc:
            raise IdentikitError(f"{file}: unreadable TorchScript ({first_line(exc)})") from None
    else:
        model = OnnxModel(file, data=data)
        torch_device = torch.device("cpu")  # ONNX Runtime's CPU provider
    classifier = Classifier(
        model,
        preprocessing=preprocessing,
        device=torch_device,
        chunk_size=chunk_size,
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        classes=classes,
        class_names=class_names,
        backend=backend,
        precision=precision,
        cache_dir=cache_dir,
        log=log,
        remeasure=remeasure,
    )
    classifier.card = card
    return classifier

"""How to choose the engine that scores a model: one value, from the command line to the tuner.

The command line builds it once (``identikit.cli.options.engine_options``); ``load_classifier``,
the :class:`~identikit.classifier.classifier.Classifier` and the tuner
(:func:`identikit.engines.tuning.choose`) each read what they need from it, instead of six
parameters threaded through every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from identikit.base.errors import IdentikitError
from identikit.base.values import is_whole
from identikit.data.datasets import default_root
from identikit.engines.choices import MAX_CHUNK
from identikit.engines.registry import engine_names


@dataclass(frozen=True)
class EngineOptions:
    """The engine, precision and chunk size to score with, and where choices are cached.

    Attributes:
        backend: ``None`` scores with PyTorch channels_last on CPUs (eager on GPUs, ONNX Runtime
            for an ONNX model) without measuring anything; ``auto`` measures every engine that
            can run the model here and takes the fastest (cached per machine and model); an
            engine's name (one registered in :mod:`identikit.engines.registry`) takes that one.
        precision: ``fp32``, ``bf16`` or ``int8``: what :meth:`Classifier.score` ranks in.
        chunk_size: images per forward pass (None: the engine's default, or measured).
        cache_dir: where measured choices and exported models are kept (None: the
            ``backends`` folder under :func:`identikit.data.datasets.default_root`).
        remeasure: measure the engines again even when a choice is cached.
        work: images the caller will score at most (a sweep's budget: runs x max queries);
            ``torch.compile`` is taken only where its compilation repays within them (None: a
            million images, about one 10 x 10 sweep of the original method).
        log: receives a line when engines are measured (not part of the options' identity).
    """

    backend: str | None = None
    precision: str = "fp32"
    chunk_size: int | None = None
    cache_dir: Path | None = None
    remeasure: bool = False
    work: int | None = None
    log: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = engine_names()
        if self.backend is not None and self.backend != "auto" and self.backend not in names:
            raise IdentikitError(f"--backend must be auto or one of {', '.join(names)}")
        if self.chunk_size is not None and (
            not is_whole(self.chunk_size) or not 1 <= self.chunk_size <= MAX_CHUNK
        ):
            # As the CLI's bound: a larger chunk is tried for every batch, and results.json,
            # which records it, would then be refused as edited after the whole sweep.
            raise IdentikitError(f"--chunk-size must be 1 to {MAX_CHUNK:,}, got {self.chunk_size}")
        if self.work is not None and (not is_whole(self.work) or self.work < 1):
            raise IdentikitError(f"the work ahead must be a positive number of images: {self.work}")

    @property
    def cache_folder(self) -> Path:
        """The folder that holds the cached choices and exports."""
        return self.cache_dir or default_root() / "backends"

    def tell(self, line: str) -> None:
        """Pass ``line`` to :attr:`log`, where there is one."""
        if self.log is not None:
            self.log(line)

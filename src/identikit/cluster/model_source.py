"""The model as it travels to a cluster's workers: the file's bytes and how to load them.

A worker may sit on another machine without the driver's files, so it is handed the model
file's bytes (through Ray's object store, once per node) with the options the driver loaded it
with, and builds its own :class:`~identikit.classifier.classifier.Classifier`, choosing its own
scoring engine on its own machine. The bytes are loaded as the driver's file is, weights only
(:func:`~identikit.classifier.loading.load_classifier`); nothing in them is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from identikit.base.errors import IdentikitError
from identikit.base.limits import MODEL_BYTES
from identikit.base.safe_files import display_name, read_regular
from identikit.classifier.classifier import Classifier
from identikit.classifier.loading import load_classifier
from identikit.engines.options import EngineOptions
from identikit.models.info import Expected
from identikit.models.preprocessing import Preprocessing


@dataclass(frozen=True)
class LoadOptions:
    """How a model file is loaded, as :func:`load_classifier` takes it."""

    device: str = "auto"
    preprocessing: Preprocessing | None = None
    expect: Expected | None = None
    engine: EngineOptions | None = None
    trust_code: bool = False


@dataclass(frozen=True)
class ModelSource:
    """A model file's bytes, its name and how to load it."""

    data: bytes
    name: str
    options: LoadOptions = LoadOptions()

    @classmethod
    def read(cls, path: str | os.PathLike[str], options: LoadOptions | None = None) -> ModelSource:
        """The model file at ``path``; the engine's log (a callable of this process) stays
        behind."""
        options = options or LoadOptions()
        if options.engine is not None:
            options = replace(options, engine=replace(options.engine, log=None))
        return cls(read_regular(path, limit=MODEL_BYTES), display_name(path), options)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def load(self) -> Classifier:
        """The Classifier of these bytes, built in this process.

        The bytes are written to a private temporary file named as the original (a model's
        format and its recorded name are read from its file), loaded, and the file removed.
        """
        with tempfile.TemporaryDirectory(prefix="identikit-model-") as folder:
            path = Path(folder) / (self.name or "model")
            path.write_bytes(self.data)
            o = self.options
            classifier = load_classifier(
                path,
                device=o.device,
                preprocessing=o.preprocessing,
                expect=o.expect,
                engine=o.engine,
                trust_code=o.trust_code,
            )
        if classifier.sha256 != self.sha256:  # the loader hashes what it read
            raise IdentikitError(f"{self.name}: the model's bytes changed on their way")
        return classifier

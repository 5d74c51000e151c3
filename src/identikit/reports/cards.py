"""Model cards for the report: one per model, from what results recorded and the checkpoint
files found in the folder, merged by the SHA-256 of the model's bytes.

A checkpoint file under the folder is read only as an identikit checkpoint (plain weights,
``torch.load(..., weights_only=True)``, an architecture of identikit's own registry): a
TorchScript program or an ONNX graph found there is never loaded, only named as skipped. Files
are read as regular files inside the folder, at most :data:`identikit.base.limits.FILE_BYTES` each,
so a huge or hostile file costs nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from identikit.base.errors import IdentikitError
from identikit.base.limits import FILE_BYTES
from identikit.base.safe_files import display_name, read_regular
from identikit.base.shapes import ImageShape
from identikit.models import ARCHITECTURES
from identikit.models.checkpoint import load_checkpoint
from identikit.models.preprocessing import Preprocessing
from identikit.sweeps.records import SWEEP_SHAPE

MODEL_SUFFIXES = (".pt", ".pth")


@dataclass
class ModelCard:
    name: str
    path: str
    sha256: str
    architecture: str = "unknown"
    description: str = ""
    parameters: int | None = None
    test_accuracy: float | None = None
    epochs: int | None = None
    seed: int | None = None
    input_shape: str = ""  # C x H x W, e.g. "3x32x32"
    conventions: str = ""  # how pixels in [0, 1] become its inputs, e.g. "pixels 0,1; ..."
    file: str = ""  # the checkpoint under the folder, relative to it, when one is there
    results: list[str] = field(default_factory=list)  # folders of the results that used it


def _describe(card: ModelCard, facts: dict[str, Any]) -> None:
    """Fill the card's empty fields from ``facts`` (a sweep's record or a checkpoint's)."""
    if card.architecture == "unknown" and facts.get("architecture"):
        card.architecture = str(facts["architecture"])
        spec = ARCHITECTURES.get(card.architecture)
        card.description = spec.description if spec else ""
    for name in ("parameters", "test_accuracy", "epochs", "seed"):
        if getattr(card, name) is None and facts.get(name) is not None:
            setattr(card, name, facts[name])
    for name in ("input_shape", "conventions"):
        if not getattr(card, name) and facts.get(name):
            setattr(card, name, str(facts[name]))


def recorded_input(record: dict[str, Any]) -> tuple[str, str]:
    """A sweep's model's input shape and conventions as its results record them: a record
    without a shape predates shapes (MNIST's, conventions not recorded); one with a shape and
    no conventions had identikit's own."""
    dims = record.get("input_shape")
    if dims is None:
        return str(SWEEP_SHAPE), "not recorded"
    conventions = record.get("preprocessing") or Preprocessing().describe()
    return str(ImageShape.of(dims)), str(conventions)


def card_of_record(record: dict[str, Any]) -> ModelCard:
    """A model's card from what its sweep recorded (validated by ``sweeps.records``)."""
    card = ModelCard(
        name=display_name(record["name"]),
        path=str(record.get("path") or ""),
        sha256=record.get("sha256") or "",
    )
    card.input_shape, card.conventions = recorded_input(record)
    _describe(card, record.get("card") or {})
    return card


def printable(text: str) -> str:
    """Text that a UTF-8 page can hold: a file name that is not UTF-8 gets U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def card_of_file(path: Path, root: Path) -> ModelCard | str:
    """The card of an identikit checkpoint under ``root``, or why the file has none."""
    shown = Path(os.path.relpath(path, root))
    try:
        data = read_regular(path, root=root, limit=FILE_BYTES)
        # ``shown`` names the file in messages; the model is built from ``data``, the bytes
        # hashed below, with identikit's own architecture code.
        model, metadata = load_checkpoint(shown, data=data)
    except IdentikitError as exc:
        return printable(str(exc))
    card = ModelCard(
        name=display_name(path),
        path=printable(str(shown)),
        sha256=hashlib.sha256(data).hexdigest(),
        file=printable(str(shown)),
    )
    _describe(card, {**metadata, "parameters": sum(p.numel() for p in model.parameters())})
    return card


def model_files(root: Path) -> list[Path]:
    """Every file under ``root`` named like a model checkpoint, links to folders not followed."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        found += [Path(folder) / name for name in files if name.endswith(MODEL_SUFFIXES)]
    return sorted(found)


class Cards:
    """The cards of a report, one per model (by SHA-256, else by name), in order of finding."""

    def __init__(self) -> None:
        self.cards: dict[str, ModelCard] = {}
        self.skipped: list[str] = []

    def add(self, card: ModelCard, used_by: str | None = None) -> ModelCard:
        """Add ``card``, or merge it into the card of the same model; note who used it."""
        key = card.sha256 or card.name
        known = self.cards.setdefault(key, card)
        if known is not card:
            known.file = known.file or card.file
            _describe(known, vars(card))
        if used_by is not None and used_by not in known.results:
            known.results.append(used_by)
        return known

    def add_files(self, root: Path) -> None:
        """A card for every identikit checkpoint under ``root``; other model files are named in
        ``skipped`` with the reason."""
        for path in model_files(root):
            card = card_of_file(path, root)
            if isinstance(card, str):
                self.skipped.append(card)
            else:
                self.add(card)

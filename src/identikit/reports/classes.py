"""How results name their classes, and the measure their runs are coloured by.

A sweep's ``results.json`` records its model's class count, input shape and (where the model
or the user gave them) class names. Every table, figure and sentence of the report, the
notebook views and the command line's tables name a class through one :class:`ClassNaming`,
so that a CIFAR-10 sweep reads "airplane", not "0", and the word "digit" is used only where the
classes are digits. :func:`convergence_measure` is the confidence a run must reach to count as
converged on the page: the search's own ``--target``, or 0.99 for a reconstruction (which draws
on to 0.9999, a stricter stop than the measure its runs are judged by).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The most classes a set of digits has (0 to 9).
_DIGITS = 10
# The confidence at which the README counts a reconstruction's run as converged.


@dataclass(frozen=True)
class ClassNaming:
    """The names of a model's classes (empty: none known, classes go by number) and whether
    the classes are digits, which decides the noun ("digit" or "class") every text uses."""

    names: tuple[str, ...] = ()
    digits: bool = False

    @property
    def noun(self) -> str:
        return "digit" if self.digits else "class"

    @property
    def nouns(self) -> str:
        return "digits" if self.digits else "classes"

    def label(self, number: int) -> str:
        """Class ``number`` by its name where it has one, else by its number."""
        return self.names[number] if 0 <= number < len(self.names) else str(number)

    def labels(self, numbers: Iterable[int]) -> list[str]:
        return [self.label(int(n)) for n in numbers]

    def numbered(self, number: int) -> str:
        """The number and the name (``3 cat``), or the number alone where the name is the
        number: for tables whose rows must match the results' keys."""
        name = self.label(number)
        return name if name == str(number) else f"{number} {name}"

    @classmethod
    def of(cls, classes: int, names: Sequence[str] = (), channels: int = 1) -> ClassNaming:
        """Digits are the classes of a grey model of at most ten classes whose names are
        absent or their own numbers (MNIST's, scikit-learn's 8 x 8 digits); anything else,
        named or colour, has classes."""
        named = tuple(str(n) for n in names)
        numbers = all(name == str(i) for i, name in enumerate(named))
        return cls(named, channels == 1 and classes <= _DIGITS and numbers)

    @classmethod
    def of_results(cls, results: Mapping[str, Any]) -> ClassNaming:
        """The naming a sweep's (validated) ``results.json`` records; a record without an input
        shape predates shapes and is MNIST's (one grey channel)."""
        model = results["model"]
        dims = model.get("input_shape") or (1,)
        return cls.of(int(model["classes"]), model.get("class_names") or (), int(dims[0]))


def page_noun(namings: Iterable[ClassNaming]) -> str:
    """The noun of a page of several sweeps: "digit" only where every sweep's classes are
    digits (and there is at least one sweep)."""
    found = list(namings)
    return "digit" if found and all(n.digits for n in found) else "class"


def reached(confidences: Iterable[float], measure: float) -> int:
    """How many of ``confidences`` are at ``measure`` or above."""
    return sum(float(c) >= measure for c in confidences)

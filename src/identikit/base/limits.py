"""Upper limits on what identikit will allocate or read, each named and each liftable.

A command line or a file can ask for more than a machine holds (``--runs 10000000``, a
checkpoint declaring four million classes, a 4.5 MB ``.npz`` that inflates to 4.4 GB). Every
such size is checked against a limit here *before* anything is allocated, and the error says
which limit was hit and how to lift it: the environment variable ``IDENTIKIT_LIMIT_<NAME>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from identikit.base.errors import IdentikitError


@dataclass(frozen=True)
class Limit:
    """A named upper bound, overridable with ``IDENTIKIT_LIMIT_<NAME>``."""

    name: str
    default: int
    what: str  # what is counted, for messages: "runs per sweep"

    @property
    def variable(self) -> str:
        return f"IDENTIKIT_LIMIT_{self.name.upper()}"

    @property
    def value(self) -> int:
        raw = os.environ.get(self.variable)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            raise IdentikitError(f"{self.variable}={raw!r} is not a whole number") from None
        if value < 1:
            raise IdentikitError(f"{self.variable} must be at least 1, got {value}")
        return value

    def check(self, amount: int, subject: str) -> None:
        """Refuse ``amount`` above the limit, in one line naming it and how to lift it."""
        if amount > self.value:
            raise IdentikitError(
                f"{subject}: {amount:,} {self.what} is over the limit of {self.value:,} "
                f"(set {self.variable} to lift it)"
            )


CLASSES = Limit("classes", 100_000, "classes")
RUNS = Limit("runs", 100_000, "runs per sweep")
CANDIDATES = Limit("candidates", 100_000, "queries per run and step")
# Bytes of one run's step: its candidates' pixels and outputs (a search's smallest group).
STEP_BYTES = Limit("step_bytes", 4 * 2**30, "bytes")
SAMPLES = Limit("samples", 1_000_000, "images per source")
# Bytes of one file read whole (results.json, judge.json, a cached choice) or of one array
# inflated from an .npz member: 2 GiB holds a 10 x 10,000-run sweep's identikits many times.
FILE_BYTES = Limit("file_bytes", 2**31, "bytes")
# Bytes of a class-names file (--class-names @FILE): 1,000 ImageNet names are 21 kB.
NAMES_BYTES = Limit("names_bytes", 16 * 2**20, "bytes")
# Bytes of a model file, read whole to hash the very bytes that are loaded.
MODEL_BYTES = Limit("model_bytes", 64 * 2**30, "bytes")
# Pixels of one picture of a folder:DIR dataset, read from its header before it is decoded
# (Pillow's own warning starts at 89 million; 2**26 is an 8,192 x 8,192 picture).
IMAGE_PIXELS = Limit("image_pixels", 2**26, "pixels per image")
# Pixels of all the pictures of a folder:DIR dataset together, counted from their headers before
# any is decoded: the dataset's array takes this many bytes in grey, three times as many in RGB.
DATASET_PIXELS = Limit("dataset_pixels", 2**30, "pixels per dataset")
# Values of one model input image (channels x pixels, each a float32): what --input-shape or a
# model file's dimensions may ask for, checked before a probe or a search allocates one. Four
# channels of a picture at IMAGE_PIXELS, 1 GiB an image.
IMAGE_VALUES = Limit("image_values", 4 * 2**26, "values per image")

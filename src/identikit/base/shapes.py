"""The shape of one image, channels x height x width, as one value.

A model's description and a dataset carry their image shape; every other module reads it from
them instead of writing its numbers (issue "One clear house"). Pixels are in [0, 1]; a batch of
images has shape ``(N, C, H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from identikit.base.errors import IdentikitError
from identikit.base.limits import IMAGE_PIXELS, IMAGE_VALUES


@dataclass(frozen=True)
class ImageShape:
    """Channels, height and width of one image (all positive)."""

    channels: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("channels", "height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IdentikitError(f"image {name} must be a positive whole number, got {value!r}")

    @property
    def size(self) -> int:
        """Values in one image: C x H x W."""
        return self.channels * self.height * self.width

    @property
    def dims(self) -> tuple[int, int, int]:
        """``(C, H, W)``, the shape of one image tensor."""
        return (self.channels, self.height, self.width)

    def batch(self, count: int) -> tuple[int, int, int, int]:
        """``(count, C, H, W)``, the shape of ``count`` images."""
        return (count, self.channels, self.height, self.width)

    def check_size(self, subject: str) -> ImageShape:
        """This shape, where one image of it is within the limits (``IMAGE_PIXELS`` of height x
        width, as an image folder's pictures; ``IMAGE_VALUES`` of channels x height x width);
        else a one-line error naming ``subject`` and the limit, before anything of the shape
        is allocated (``--input-shape 3,100000,100000`` would ask for 120 GB an image)."""
        IMAGE_PIXELS.check(self.height * self.width, f"{subject} ({self})")
        IMAGE_VALUES.check(self.size, f"{subject} ({self})")
        return self

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"

    @classmethod
    def of(cls, dims: tuple[int, ...] | list[int]) -> ImageShape:
        """The shape of a ``(C, H, W)`` sequence; a wrong length is a clear error."""
        if len(dims) != 3:
            raise IdentikitError(f"an image shape is C,H,W (three numbers), got {tuple(dims)}")
        return cls(int(dims[0]), int(dims[1]), int(dims[2]))

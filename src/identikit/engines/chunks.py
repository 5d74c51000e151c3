"""Chunk sizes that scale with the image: how many images one forward pass may take.

The engines' chunk sizes were chosen for MNIST's 784 pixels, where 512 images are 1.6 MB of
input and a few MB of activations. An ImageNet-sized input (3 x 224 x 224) is 192 times larger,
and a ResNet-18's first activation alone is 3.2 MB per image, so 512 of them would need
gigabytes. A chunk is therefore held to a number of input values per device (a proxy for the
activations, which grow with the input); every MNIST-sized chunk fits, so MNIST's choices stay
as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from identikit.base.device import gpu_memory
from identikit.base.shapes import ImageShape

# Input values of one chunk, at most: 2 MiB of float32 pixels on a CPU (512 MNIST images fit),
# 32 MiB on a GPU (8,192 MNIST images fit) ...
CPU_CHUNK_VALUES = 2**19
CUDA_CHUNK_VALUES = 2**23
# ... or on a GPU with more memory, one input value per this many bytes of it: the cnn's
# activations peak near 40 values per input value (160 bytes in float32), so a chunk's stay
# within a twelfth of the card, and four processes sharing it (Ray's --gpus-per-task 0.25) a
# third. An H200's 141 GB take 65,536 MNIST images a chunk, where issue 19's isolated rate
# peaked, an 80 GB H100 32,768; a 24 GB card stays at 8,192.
CUDA_BYTES_PER_VALUE = 2048
# Images that timing an engine scores per measurement, at most (MNIST's timing batch) ...
TIMING_IMAGES = 1024
# ... and input values, at most: two CPU chunks' worth.
TIMING_VALUES = 2 * CPU_CHUNK_VALUES


def chunk_values(device: torch.device) -> int:
    """Input values one chunk may hold on ``device``: CPU_CHUNK_VALUES on a CPU; on a GPU,
    CUDA_CHUNK_VALUES or, on a card of more memory, one per CUDA_BYTES_PER_VALUE of it."""
    if device.type != "cuda":
        return CPU_CHUNK_VALUES
    memory = gpu_memory(device)
    return (
        CUDA_CHUNK_VALUES
        if memory is None
        else max(CUDA_CHUNK_VALUES, memory // CUDA_BYTES_PER_VALUE)
    )


def fit_chunk(chunk: int, shape: ImageShape, device: torch.device) -> int:
    """``chunk``, or fewer images where ``chunk`` images of ``shape`` would exceed the
    device's :func:`chunk_values` (at least one)."""
    return max(1, min(chunk, chunk_values(device) // shape.size))


def fit_chunks(chunks: Sequence[int], shape: ImageShape, device: torch.device) -> tuple[int, ...]:
    """The chunk sizes to try for images of ``shape``: those of ``chunks`` that fit, or where
    none does, the largest that fits."""
    fitting = tuple(c for c in chunks if fit_chunk(c, shape, device) == c)
    return fitting or (fit_chunk(min(chunks), shape, device),)


def timing_images(chunk: int, shape: ImageShape) -> int:
    """Images to time an engine with: two chunks at least, else TIMING_IMAGES or
    TIMING_VALUES' worth, whichever is fewer."""
    return max(2 * chunk, min(TIMING_IMAGES, TIMING_VALUES // shape.size))

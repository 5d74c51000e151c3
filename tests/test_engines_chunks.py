"""Chunk sizes scale with the image: MNIST's as before, fewer images of a larger shape."""

from __future__ import annotations

import pytest
import torch

from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier
from identikit.data.datasets import MNIST_SHAPE
from identikit.engines import chunks
from identikit.engines.chunks import (
    CPU_CHUNK_VALUES,
    CUDA_CHUNK_VALUES,
    chunk_values,
    fit_chunk,
    fit_chunks,
    timing_images,
)
from identikit.engines.tuning import CPU_CHUNKS, CUDA_CHUNKS
from identikit.models import build_model
from identikit.models.info import ModelInfo

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
IMAGENET = ImageShape(3, 224, 224)


def test_mnist_chunks_are_as_they_were() -> None:
    assert fit_chunks(CPU_CHUNKS, MNIST_SHAPE, CPU) == CPU_CHUNKS
    assert timing_images(512, MNIST_SHAPE) == 1024


def test_a_gpu_of_more_memory_takes_larger_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """8,192 MNIST images a chunk on any GPU, as before; 32,768 on an 80 GB H100, 65,536 on a
    141 GB H200."""
    sizes = ((None, 8192), (8 << 30, 8192), (24 << 30, 8192), (80 << 30, 32768), (141 << 30, 65536))
    for memory, largest in sizes:
        monkeypatch.setattr(chunks, "gpu_memory", lambda _device, m=memory: m)
        fitted = fit_chunks(CUDA_CHUNKS, MNIST_SHAPE, CUDA)
        assert fitted == tuple(c for c in CUDA_CHUNKS if c <= largest)
        room = (memory or 0) // chunks.CUDA_BYTES_PER_VALUE
        assert fitted[-1] * MNIST_SHAPE.size <= max(CUDA_CHUNK_VALUES, room)
        assert fit_chunk(65536, IMAGENET, CUDA) == chunk_values(CUDA) // IMAGENET.size


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_a_chunk_of_large_images_holds_no_more_values_than_the_device_allows(
    device: torch.device,
) -> None:
    budget = chunk_values(device)
    for chunk in (1, 64, 512, 8192):
        fitted = fit_chunk(chunk, IMAGENET, device)
        assert 1 <= fitted <= chunk
        assert fitted * IMAGENET.size <= budget or fitted == 1
    assert fit_chunks(CPU_CHUNKS, IMAGENET, CPU) == (CPU_CHUNK_VALUES // IMAGENET.size,)
    # 3 x 32 x 32: the chunk sizes that fit are kept, the rest dropped.
    assert fit_chunks(CPU_CHUNKS, ImageShape(3, 32, 32), CPU) == (64, 128)


def test_an_image_larger_than_a_chunk_is_scored_one_at_a_time() -> None:
    huge = ImageShape(3, 1024, 1024)
    assert fit_chunk(512, huge, CPU) == 1
    assert fit_chunks(CPU_CHUNKS, huge, CPU) == (1,)
    assert timing_images(1, huge) == 2


def test_a_classifier_of_imagenet_sized_images_scores_in_small_chunks() -> None:
    torch.manual_seed(0)
    model = build_model("colour-cnn", 1000, IMAGENET)
    classifier = Classifier(model, ModelInfo(input_shape=IMAGENET))
    assert classifier.chunk_size == CPU_CHUNK_VALUES // IMAGENET.size
    images = torch.rand(7, *IMAGENET.dims)
    chunked = classifier.log_probabilities(images)
    with torch.no_grad():
        whole = torch.log_softmax(model.eval()(images), dim=1)
    assert torch.allclose(chunked, whole, atol=1e-5)

"""The device a command runs on, and what a GPU has to offer."""

from __future__ import annotations

import pytest
import torch

from identikit.base.device import gpu_memory, resolve_device
from identikit.base.errors import IdentikitError


def test_auto_takes_a_gpu_where_there_is_one() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(IdentikitError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_the_memory_of_this_machines_gpu() -> None:
    memory = gpu_memory(torch.device("cuda"))
    assert (memory is None) == (not torch.cuda.is_available())
    assert memory is None or memory > 1 << 30
    assert gpu_memory(torch.device("cuda", 99)) is None  # no such card

"""Scoring backends: the engines that run a model on a batch of inputs, and how one is chosen.

A :class:`~identikit.engines.scorers.Scorer` runs a model with one engine (PyTorch eager,
PyTorch channels_last, ``torch.compile``, or ONNX Runtime) at one precision and chunk size;
:mod:`~identikit.engines.tuning` measures the candidates on this machine, verifies each against
eager PyTorch, keeps the fastest and caches the choice per machine and model.
"""

from identikit.engines.precision import PRECISIONS, check_precision
from identikit.engines.scorers import BACKENDS, Scorer

__all__ = ["BACKENDS", "PRECISIONS", "Scorer", "check_precision"]

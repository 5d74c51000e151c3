"""Scoring engines: the engines that run a model on a batch of inputs, and how one is chosen.

A :class:`~identikit.engines.scorers.Scorer` runs a model with one engine at one precision and
chunk size; :mod:`~identikit.engines.tuning` measures the candidates on this machine, verifies
each against eager PyTorch, keeps the fastest and caches the choice per machine and model.

Each engine is a module of its own, registered below (:mod:`identikit.engines.registry`) in
the order that ``--backend auto`` measures them and breaks ties in: a new engine is a new module
and one ``register`` line here.
"""

from identikit.engines import channels_last, eager, onnx_runtime, torch_compile
from identikit.engines.precision import PRECISIONS, check_precision
from identikit.engines.registry import engine_names, register
from identikit.engines.scorers import Scorer

register(eager.ENGINE)  # PyTorch as it is: the reference every engine is checked against
register(channels_last.ENGINE)
register(torch_compile.ENGINE)
register(onnx_runtime.ENGINE)

# The engines' names, for the command line's choices (an engine a test registers later is not
# among them; EngineOptions checks names against the registry itself).
BACKENDS = engine_names()

__all__ = ["BACKENDS", "PRECISIONS", "Scorer", "check_precision"]

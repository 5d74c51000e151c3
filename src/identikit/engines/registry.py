"""Registry of scoring engines: adding one is a new module and one ``register`` line.

An :class:`Engine` is what the tuner (:mod:`identikit.engines.tuning`) needs to know of an
engine, and all it knows: its name, when it can run a model here (and why not, when it cannot),
how to build its :class:`~identikit.engines.scorers.Scorer`, and two facts that change how it is
timed. Engines are measured, and ties between them broken, in the order they were registered
(``identikit.engines`` registers the built-in ones: eager, channels_last, compile, onnx), so
that order is part of every cached choice's key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from identikit.engines.scorers import Scorer
from identikit.engines.target import Target


@dataclass(frozen=True)
class Build:
    """What an engine is built for: the model, and the precision, chunk size and thread count
    to score it with.

    ``check`` is the tuner's check against eager PyTorch (it raises
    :class:`~identikit.engines.scorers.BackendUnavailable` for a scorer that fails it): an engine
    may pass a scorer through it itself, where a failure calls for more than giving up (ONNX
    Runtime makes a damaged cached file again); the tuner checks every scorer that was not.
    """

    target: Target
    precision: str
    chunk_size: int
    threads: int
    check: Callable[[Scorer], Scorer]


@dataclass(frozen=True)
class Engine:
    """One scoring engine, as the tuner sees it.

    Attributes:
        name: how options, choices and results call it (``--backend NAME``).
        why_not: why it cannot score this target at this precision here, in one line; None
            when it can.
        build: its scorer for a :class:`Build`; raises ``BackendUnavailable`` (saying why)
            where it cannot be built after all.
        compiles: its first call compiles a graph specialised to one batch size. The tuner then
            builds it last, once, at the chunk size the other PyTorch engines scored fastest,
            takes it only where its speed repays the compilation, and does not build it again
            at fewer threads.
        pytorch: it runs on PyTorch's threads, whose count a choice of it sets (ONNX Runtime
            has threads of its own).
    """

    name: str
    why_not: Callable[[Target, str], str | None]
    build: Callable[[Build], Scorer]
    compiles: bool = False
    pytorch: bool = True


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add ``engine`` after those registered before it."""
    if engine.name == "auto":  # --backend auto asks the tuner to pick
        raise ValueError("no engine can be called auto")
    if engine.name in ENGINES:
        raise ValueError(f"an engine called {engine.name!r} is registered already")
    ENGINES[engine.name] = engine
    return engine


def unregister(name: str) -> None:
    """Remove the engine ``name`` (a test's own engine, once the test is done)."""
    del ENGINES[name]


def registered() -> tuple[Engine, ...]:
    """The engines, in the order they were registered."""
    return tuple(ENGINES.values())


def engine_names() -> tuple[str, ...]:
    """The names of the engines, in the order they were registered."""
    return tuple(ENGINES)


def get_engine(name: str) -> Engine:
    """The engine registered as ``name``."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"no engine is registered as {name!r}") from None

"""Choosing the engine, chunk size and thread count that score a model fastest on this machine.

Every candidate engine is built, checked against eager PyTorch on probe inputs (class
probabilities within ``TOLERANCE``; bf16 engines are not held to it, since their kept candidates
are re-scored in float32), and timed scoring the same batch at each chunk size, in alternating
rounds so that a slow spell of a shared machine does not favour one of them; when the two
fastest are close, they are measured again in turns. The fastest wins, ``torch.compile`` only
where its speed repays its compilation (which every new process pays again) within the work
ahead (a sweep's budget; ``REPAY_IMAGES`` images where the caller does not say), and the choice
says why a faster engine was passed over. Where the whole work is too small for any compilation
to repay, ``torch.compile`` is not even measured (its measurement would cost more than it could
save); a later, larger sweep measures it. The choice is
cached per machine (CPU, thread count, library versions) and model structure
(:mod:`identikit.engines.choices`), so the measurement happens once; a cached rate far below
what a sweep then achieves was measured on a busy machine, and :func:`note_achieved_rate` drops
it so that the next process measures again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import torch

from identikit.base.errors import IdentikitError, first_line
from identikit.engines.choices import (
    PROCESS_THREADS,
    Choice,
    Request,
    Trial,
    read_choices,
    remember,
    save_choices,
)
from identikit.engines.chunks import fit_chunks, timing_images
from identikit.engines.options import EngineOptions
from identikit.engines.registry import Build, get_engine, registered
from identikit.engines.scorers import BackendUnavailable, Scorer
from identikit.engines.target import Target

CPU_CHUNKS = (64, 128, 256, 512)
# The two largest only on a GPU of the memory for them (engines.chunks.chunk_values).
CUDA_CHUNKS = (1024, 4096, 8192, 32768, 65536)
MEASURE_SECONDS = 0.15
ROUNDS = 2
# torch.compile is taken only where its speed repays its compilation (which every new process
# pays again) within the work ahead (EngineOptions.work: a sweep's budget), or, where the caller
# does not say, within this many images: about one 10 x 10 sweep of the original method.
REPAY_IMAGES = 1_000_000
# torch.compile is not even measured for work it could not repay: at most it saves the time the
# whole work takes at the fastest other engine, and measuring it costs a compilation (0.1 s
# with warm caches to over 10 s cold, seen here) and its timing (ROUNDS x MEASURE_SECONDS).
# A GPU scores a 1,000,000-image horizon in under a second: without this, every small sweep
# there compiled the model before it began.
COMPILE_WORTH_SECONDS = 1.0
# The two best are measured again, in turns, when the second is within this factor of the
# first: a single short measurement of each varies by about 10% on a shared machine.
CLOSE = 1.25
FINAL_ROUNDS = 3
TOLERANCE = 1e-5
INT8_TOLERANCE = 0.05
# Half the threads win only when they are at least this much faster (the noise of a timing).
FEWER_THREADS_GAIN = 1.03
# A sweep's rate counts everything a search does besides scoring (drawing masks, keeping the
# best), so it stays below the scoring rate of an engine measured on a quiet machine: a sweep
# this much faster than the recorded rate means the recording was made on a busy one ...
STALE_FACTOR = 1.5
# ... provided the sweep ran long enough for its own rate to mean something.
STALE_MIN_SECONDS = 10.0


def available_backends(target: Target, precision: str) -> tuple[list[str], dict[str, str]]:
    """The engines that could run ``target`` here, in the registry's order, and why each other
    one cannot."""
    names: list[str] = []
    skipped: dict[str, str] = {}
    for engine in registered():
        why = engine.why_not(target, precision)
        if why is None:
            names.append(engine.name)
        else:
            skipped[engine.name] = why
    return names, skipped


def choose(target: Target, options: EngineOptions) -> tuple[Scorer, Choice]:
    """The scorer for ``options.backend`` (``auto``: the fastest available) and how it was
    chosen.

    A named backend with a given chunk size is used as it is; otherwise the chunk size (and,
    for ``auto``, the engine) is measured, or read from the cache when measured before (unless
    ``options.remeasure``). ``options.backend`` None is no request for the tuner: the
    Classifier's default engine is chosen without it.
    """
    if options.backend is None:
        raise ValueError("choose() needs a backend: auto or an engine's name")
    precision, chunk_size = options.precision, options.chunk_size
    names, skipped = available_backends(target, precision)
    if not names:
        # Each reason once: engines refused for the same cause say it in the same words.
        reasons = dict.fromkeys(skipped.values())
        raise IdentikitError(f"--precision {precision}: {'; '.join(reasons)}")
    if options.backend != "auto":
        if options.backend not in names:
            raise IdentikitError(f"--backend {options.backend}: {skipped[options.backend]}")
        names, skipped = [options.backend], {}
    if chunk_size is not None and len(names) == 1:
        scorer = _build(target, names[0], precision, chunk_size, PROCESS_THREADS)
        return scorer, Choice(names[0], precision, chunk_size, PROCESS_THREADS, how="given")
    request = Request(target.signature, target.device, tuple(names), precision, chunk_size)
    key = request.key()
    # Read even when measuring again: a cache of a newer identikit is refused before measuring.
    cached = request.cached(read_choices(target.cache_dir).get(key))
    if (
        cached is not None
        and not options.remeasure
        and not _deferred_would_repay(cached, options.work)
    ):
        cached = for_work(cached, options.work)
        try:
            scorer = _build(target, cached.backend, precision, cached.chunk_size, cached.threads)
        except BackendUnavailable:
            pass  # e.g. ONNX Runtime was uninstalled since: measure again
        else:
            _apply_threads(cached)
            cached.cache_dir, cached.cache_key = target.cache_dir, key
            return scorer, cached
    options.tell(f"measuring scoring engines ({', '.join(names)}) for this machine and model, once")
    # The cache keeps the choice for the default horizon; the work ahead decides it again.
    bench = _Bench(target, precision, skipped, REPAY_IMAGES, work=options.work)
    scorer, choice = bench.measure(names, chunk_size)
    remember(target.cache_dir, key, choice)
    decided = for_work(choice, options.work)
    if decided.backend != choice.backend:
        scorer, choice = bench.engines[decided.backend], decided
        scorer.chunk_size = choice.chunk_size
    _apply_threads(choice)
    choice.cache_dir, choice.cache_key = target.cache_dir, key
    return scorer, choice


@dataclass
class _Bench:
    """One measurement: the engines built, and their rates by :class:`Trial` label."""

    target: Target
    precision: str
    skipped: dict[str, str]
    horizon: int  # images the compilation of torch.compile must repay within
    work: int | None = None  # the images the caller will score (None: unknown)
    deferred: list[str] = field(default_factory=list)
    batch: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    engines: dict[str, Scorer] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def measure(self, names: list[str], chunk_size: int | None) -> tuple[Scorer, Choice]:
        """Time ``names`` at ``chunk_size`` (None: at each of the device's chunk sizes); the
        fastest engine and the choice that records every rate."""
        cuda = self.target.device.type == "cuda"
        device, shape = self.target.device, self.target.input_shape
        tried = CUDA_CHUNKS if cuda else CPU_CHUNKS
        chunks = (chunk_size,) if chunk_size else fit_chunks(tried, shape, device)
        self.batch = _timing_batch(self.target, max(chunks))
        compiling = [name for name in names if get_engine(name).compiles]
        for name in [n for n in names if n not in compiling]:
            try:
                self.engines[name] = _build(
                    self.target, name, self.precision, chunks[0], PROCESS_THREADS
                )
            except BackendUnavailable as exc:
                self.skipped[name] = str(exc)
        for _ in range(ROUNDS):
            for name in self.engines:
                for chunk in chunks:
                    self._time(Trial(name, chunk), rounds=1)
        for name in compiling:
            if self._could_repay(name):
                self._compile(name, default_chunk=chunks[0])
        timed = {label: rate for label, rate in self.rates.items() if Trial.parse(label)}
        if not timed:
            raise IdentikitError(
                f"no scoring engine can run {self.target.name}: "
                + "; ".join(f"{b}: {why}" for b, why in self.skipped.items())
            )
        self._settle(timed)
        compile_seconds = max((self.rates.get(_start(n), 0.0) for n in compiling), default=0.0)
        best = _fastest(timed, compile_seconds=compile_seconds, horizon=self.horizon)
        winner, rate = self._with_fewer_threads(_trial(best), timed[best])
        return winner, Choice(
            backend=winner.backend,
            precision=self.precision,
            chunk_size=winner.chunk_size,
            threads=winner.threads,
            images_per_s=round(rate),
            rates={k: round(v, 1) for k, v in self.rates.items()},
            skipped=self.skipped,
            measured=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            passed_over=_passed_over(
                timed, best, compile_seconds=compile_seconds, horizon=self.horizon
            ),
            deferred=self.deferred,
            how="measured",
        )

    def _could_repay(self, name: str) -> bool:
        """Whether the compiling engine ``name`` is worth measuring for the work ahead (the
        horizon where it is not known): where the whole of it takes under
        COMPILE_WORTH_SECONDS at the fastest engine timed, it is left out (deferred, and said
        so); where nothing else was timed, it is measured."""
        fastest = max(self.rates.values(), default=0.0)
        if fastest <= 0 or _compiling_could_repay(self.work, fastest):
            return True
        work = self.horizon if self.work is None else self.work
        self.deferred.append(name)
        self.skipped[name] = (
            f"not measured: the work ahead ({work:,} images) takes {work / fastest:.2g} s "
            "at the fastest engine, too little for a compilation to repay"
        )
        return False

    def _time(self, trial: Trial, *, rounds: int) -> float:
        """Time ``trial``'s engine, keeping its best rate so far; that rate."""
        engine = self.engines[trial.backend]
        rate = max(_rate(engine, self.batch, trial.chunk) for _ in range(rounds))
        self.rates[trial.label] = max(self.rates.get(trial.label, 0.0), rate)
        return self.rates[trial.label]

    def _compile(self, name: str, *, default_chunk: int) -> None:
        """Build and time the compiling engine ``name`` (``torch.compile``): a compiled graph is
        specialised to one batch size, so it is compiled once, at the chunk size the other
        PyTorch engines liked best."""
        torch_rates = {
            trial: rate
            for trial, rate in ((Trial.parse(k), v) for k, v in self.rates.items())
            if trial is not None and get_engine(trial.backend).pytorch
        }
        chunk = (
            max(torch_rates, key=torch_rates.__getitem__).chunk if torch_rates else default_chunk
        )
        try:
            started = time.perf_counter()
            # _build runs the engine on the probes: this is the compilation a process pays.
            self.engines[name] = _build(self.target, name, self.precision, chunk, PROCESS_THREADS)
            self.rates[_start(name)] = round(time.perf_counter() - started, 1)
            self._time(Trial(name, chunk), rounds=ROUNDS)
        except BackendUnavailable as exc:
            self.skipped[name] = str(exc)

    def _settle(self, timed: dict[str, float]) -> None:
        """Time the two fastest of ``timed`` again, in turns, when they are close."""
        contenders = sorted(timed, key=timed.__getitem__, reverse=True)[:2]
        if len(contenders) == 2 and timed[contenders[0]] <= timed[contenders[1]] * CLOSE:
            for _ in range(FINAL_ROUNDS):
                for label in contenders:
                    timed[label] = self._time(_trial(label), rounds=1)

    def _with_fewer_threads(self, best: Trial, rate: float) -> tuple[Scorer, float]:
        """The winner at ``best``, or at half the threads where that is faster: threads can
        wait on each other more than they compute."""
        winner = self.engines[best.backend]
        winner.chunk_size = best.chunk
        fewer = PROCESS_THREADS // 2
        if fewer < 1 or get_engine(best.backend).compiles:
            return winner, rate
        alternative = None
        with _torch_threads(fewer):
            try:
                alternative = _build(self.target, best.backend, self.precision, best.chunk, fewer)
                with_fewer = max(_rate(alternative, self.batch, best.chunk) for _ in range(ROUNDS))
            except BackendUnavailable:
                with_fewer = 0.0
        self.rates[Trial(best.backend, best.chunk, fewer).label] = with_fewer
        if alternative is not None and with_fewer > rate * FEWER_THREADS_GAIN:
            return alternative, with_fewer
        return winner, rate


def _trial(label: str) -> Trial:
    """The trial of a label this module wrote."""
    trial = Trial.parse(label)
    assert trial is not None, label
    return trial


def _fastest(timed: dict[str, float], *, compile_seconds: float, horizon: int) -> str:
    """The fastest engine@chunk label; a ``compile`` one only where, over ``horizon`` images
    (the work ahead), it saves more time than its compilation (``compile_seconds``) costs."""
    best = max(timed, key=timed.__getitem__)
    others = {label: rate for label, rate in timed.items() if not _compiled(label)}
    if not _compiled(best) or not others:
        return best
    runner_up = max(others, key=others.__getitem__)
    saved = horizon / timed[runner_up] - horizon / timed[best]
    return best if saved >= compile_seconds else runner_up


def _passed_over(
    timed: dict[str, float], best: str, *, compile_seconds: float, horizon: int
) -> dict[str, str]:
    """Why a faster compiling engine's label than ``best`` was not chosen (see
    :func:`_fastest`), as ``{"compile": reason}``; empty when the fastest won."""
    fastest = max(timed, key=timed.__getitem__)
    if fastest == best or not _compiled(fastest):
        return {}
    saved = horizon / timed[best] - horizon / timed[fastest]
    why = (
        f"its {compile_seconds:.1f} s compilation does not pay back within "
        f"{horizon:,} images (it would save {saved:.1f} s)"
    )
    return {_trial(fastest).backend: why}


def for_work(choice: Choice, work: int | None) -> Choice:
    """A ``choice`` made for REPAY_IMAGES decided again for ``work`` images ahead (None: as
    it is) from the rates it records: a sweep of a billion images takes ``torch.compile``
    where one of a million does not, without measuring anything again."""
    if work is None:
        return choice  # the cache holds the choice for REPAY_IMAGES
    full = {t.label: r for t, r in choice.trials().items() if t.threads is None}
    if not full or choice.backend not in {_trial(label).backend for label in full}:
        return choice  # a choice recorded without its engines' rates
    start = max((r for k, r in choice.rates.items() if Trial.parse(k) is None), default=0.0)
    best = _trial(_fastest(full, compile_seconds=start, horizon=work))
    passed_over = _passed_over(full, best.label, compile_seconds=start, horizon=work)
    if best.backend == choice.backend:
        return replace(choice, passed_over=passed_over)
    return replace(
        choice,
        backend=best.backend,
        chunk_size=best.chunk,
        threads=PROCESS_THREADS,
        images_per_s=round(full[best.label]),
        passed_over=passed_over,
    )


def _compiling_could_repay(work: int | None, fastest: float) -> bool:
    """Whether ``work`` images (None: REPAY_IMAGES) take COMPILE_WORTH_SECONDS or more at
    ``fastest`` images/s: enough for a compilation to be worth measuring."""
    return (REPAY_IMAGES if work is None else work) / fastest >= COMPILE_WORTH_SECONDS


def _deferred_would_repay(choice: Choice, work: int | None) -> bool:
    """Whether ``work`` images (None: REPAY_IMAGES) are enough for an engine ``choice`` left
    unmeasured (see :meth:`_Bench._could_repay`) to be measured after all."""
    if not choice.deferred:
        return False
    return not choice.images_per_s or _compiling_could_repay(work, choice.images_per_s)


def _compiled(label: str) -> bool:
    """Whether ``label`` times an engine that compiles (``torch.compile``)."""
    return get_engine(_trial(label).backend).compiles


def _start(name: str) -> str:
    """The rate label of a compiling engine's start-up seconds: ``compile-start-s``."""
    return f"{name}-start-s"


def _build(target: Target, name: str, precision: str, chunk: int, threads: int) -> Scorer:
    """The engine ``name``, checked against eager PyTorch before it is used: by the engine
    itself (:attr:`Build.check`), or here."""
    checked: list[Scorer] = []

    def check(scorer: Scorer) -> Scorer:
        checked.append(_checked(target, scorer))
        return scorer

    scorer = get_engine(name).build(Build(target, precision, chunk, threads, check))
    return scorer if any(s is scorer for s in checked) else _checked(target, scorer)


def _checked(target: Target, scorer: Scorer) -> Scorer:
    """``scorer``, once its outputs on the probes are finite and close enough to eager's."""
    try:
        outputs = torch.cat(
            [scorer(part) for part in torch.split(target.probes, scorer.chunk_size)]
        )
    except BackendUnavailable:
        raise
    except Exception as exc:  # an engine may fail on a model in ways of its own
        raise BackendUnavailable(f"fails on this model ({first_line(exc)})") from None
    if not torch.isfinite(outputs).all():
        raise BackendUnavailable("returns NaN or infinite outputs")
    if scorer.precision == "fp32" and target.module is not None:
        difference, allowed = _difference(target, outputs), tolerance(target)
        if not difference <= allowed:
            raise BackendUnavailable(
                f"differs from eager PyTorch by {difference:.1e} (allowed {allowed:.1e})"
            )
    elif scorer.precision == "int8":
        # Ranking only needs the order roughly right; a quantization that moves probabilities
        # wholesale (ranges badly calibrated for this model) would rank at random.
        difference = _difference(target, outputs, worst=False)
        if not difference <= INT8_TOLERANCE:
            raise BackendUnavailable(
                f"int8 moves class probabilities by {difference:.2f} on average"
            )
    return scorer


def tolerance(target: Target) -> float:
    """How far an fp32 engine's class probabilities may be from eager PyTorch's: TOLERANCE,
    or, where eager PyTorch itself differs more from one batch to another on this device (a
    GPU's kernels chosen per batch size sum in other orders), twice that: no engine can be
    held closer to eager than eager is to itself."""
    return max(TOLERANCE, 2 * target.self_difference)


def _difference(target: Target, outputs: torch.Tensor, *, worst: bool = True) -> float:
    """Largest (or mean) difference in class probability between ``outputs`` and the model's
    own float32 outputs."""
    reference = target.reference(target.probes)
    gap = (
        target.probabilities(outputs.to(reference.device)) - target.probabilities(reference)
    ).abs()
    return float(gap.max() if worst else gap.mean())


def _timing_batch(target: Target, chunk: int) -> torch.Tensor:
    """Inputs to time with: the probes repeated to a few chunks' worth."""
    need = timing_images(chunk, target.input_shape)
    reps = -(-need // len(target.probes))
    return target.probes.repeat(reps, *([1] * (target.probes.dim() - 1)))[:need]


def _rate(scorer: Scorer, batch: torch.Tensor, chunk: int) -> float:
    """Images per second scoring ``batch`` in chunks of ``chunk`` (best of short repeats)."""
    parts = torch.split(batch, chunk)
    scorer(parts[0])  # warm-up: first-call allocations and kernel choices
    done, started = 0, time.perf_counter()
    while True:
        for part in parts:
            scorer(part)
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        done += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= MEASURE_SECONDS:
            return done / elapsed


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _apply_threads(choice: Choice) -> None:
    """PyTorch engines run with the chosen thread count (ONNX Runtime's is its session's)."""
    if get_engine(choice.backend).pytorch and choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)


def note_achieved_rate(
    choice: Choice,
    rate: float | None,
    *,
    seconds: float,
    log: Callable[[str], None] | None = None,
) -> bool:
    """Forget the cached ``choice`` when a sweep achieved far more than its recorded rate.

    ``rate`` is the sweep's queries a second over ``seconds``; the caller passes only a sweep
    scored throughout by ``choice``'s engine (not one resumed from a state another process
    scored). A sweep's rate includes the search's own work, so one above ``STALE_FACTOR``
    times the recorded scoring rate means the choice was measured while the machine was busy:
    its cache entry is deleted, so that the next process measures again, and ``log`` is told
    in one line. Returns whether the entry was deleted.
    """
    recorded = choice.images_per_s
    if (
        choice.cache_dir is None
        or choice.cache_key is None
        or not recorded
        or rate is None
        or seconds < STALE_MIN_SECONDS
        or rate <= STALE_FACTOR * recorded
    ):
        return False
    entries = read_choices(choice.cache_dir)
    entry = entries.get(choice.cache_key)
    if not isinstance(entry, dict) or (entry.get("measured"), entry.get("images_per_s")) != (
        choice.measured,
        recorded,
    ):
        return False  # measured again since, by another process: that measurement stands
    del entries[choice.cache_key]
    save_choices(choice.cache_dir, entries)
    if log is not None:
        log(
            f"this sweep ran at {rate:,.0f} queries/s, far above the {recorded:,.0f} images/s "
            f"measured for {choice.backend} on {choice.measured or 'an earlier run'} (then "
            "on a busy machine): the engines will be measured again next time"
        )
    return True

"""What the automatic engine choice tells the user: why a faster engine was passed over, when a
cached choice was measured, and a cached choice dropped when a sweep shows it was measured on a
busy machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from identikit.classifier.classifier import Classifier
from identikit.engines import tuning
from identikit.models import build_model
from tests.helpers import run_cli

# A choice as _measure makes it where torch.compile is fastest but does not repay compiling.
RATES = {"onnx@512": 70_120.0, "eager@256": 50_000.0, "compile@256": 94_300.0}


@pytest.fixture(autouse=True)
def quick_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter timings: these tests check what is chosen and said, not the speeds."""
    monkeypatch.setattr(tuning, "MEASURE_SECONDS", 0.02)
    monkeypatch.setattr(tuning, "ROUNDS", 1)


def test_compile_passed_over_says_why() -> None:
    best = tuning._fastest(RATES, compile_seconds=6.1)
    assert best == "onnx@512"
    passed = tuning._passed_over(RATES, best, compile_seconds=6.1)
    assert passed["compile"] == (
        "its 6.1 s compilation does not pay back within 1,000,000 images (it would save 3.7 s)"
    )
    choice = tuning.Choice(
        "onnx", "fp32", 512, 2, 70_120, {**RATES, "compile-start-s": 6.1}, passed_over=passed
    )
    line = choice.summary()
    assert "; compile 94,300 images/s not chosen: its 6.1 s compilation" in line
    assert "eager 50,000" in line and "compile 94,300;" not in line  # listed once, with why
    # The fastest won, or compile won: nothing was passed over.
    assert tuning._passed_over(RATES, "compile@256", compile_seconds=1.0) == {}
    assert (
        tuning._passed_over({"onnx@512": 2.0, "eager@64": 1.0}, "onnx@512", compile_seconds=0) == {}
    )


def _cached_classifier(cache: Path) -> Classifier:
    return Classifier(build_model("softmax"), backend="channels_last", cache_dir=cache)


def test_a_cached_choice_says_when_and_how_to_measure_again(tmp_path: Path) -> None:
    first = _cached_classifier(tmp_path)
    assert first.choice.how == "measured" and "[measured now, cached]" in first.choice.summary()
    second = _cached_classifier(tmp_path)
    assert second.choice.how == "cached" and second.choice.measured == first.choice.measured
    assert second.choice.summary().endswith(
        f"[measured {first.choice.measured}, cached; "
        "identikit backends --remeasure to measure again]"
    )
    assert second.choice.images_per_s == first.choice.images_per_s  # exposed for sweeps


def _edit_cache(cache: Path, **changes: object) -> None:
    path = cache / tuning.CACHE_FILE
    entries = json.loads(path.read_text())
    for record in entries.values():
        for key, value in changes.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
    path.write_text(json.dumps(entries))


def test_passed_over_is_cached_and_validated(tmp_path: Path) -> None:
    _cached_classifier(tmp_path)
    _edit_cache(tmp_path, passed_over={"compile": "its 6.1 s compilation does not pay back"})
    cached = _cached_classifier(tmp_path).choice
    assert cached.how == "cached" and cached.passed_over["compile"].startswith("its 6.1 s")
    # A cache written before the field existed is still read ...
    _edit_cache(tmp_path, passed_over=None)
    assert _cached_classifier(tmp_path).choice.how == "cached"
    # ... but a hand-edited one that holds something else is measured again.
    _edit_cache(tmp_path, passed_over={"compile": 3})
    assert _cached_classifier(tmp_path).choice.how == "measured"
    _edit_cache(tmp_path, cache_dir="/elsewhere")  # this process's own fields are not recorded
    assert _cached_classifier(tmp_path).choice.how == "measured"


def test_a_choice_measured_on_a_busy_machine_is_measured_again(tmp_path: Path) -> None:
    _cached_classifier(tmp_path)
    choice = _cached_classifier(tmp_path).choice
    recorded = choice.images_per_s
    assert choice.how == "cached" and recorded
    lines: list[str] = []
    # Not enough to tell: a short sweep, or a rate the recorded one explains.
    assert not tuning.note_achieved_rate(choice, 3 * recorded, seconds=2.0, log=lines.append)
    assert not tuning.note_achieved_rate(choice, 1.4 * recorded, seconds=60, log=lines.append)
    assert not tuning.note_achieved_rate(choice, None, seconds=60, log=lines.append)
    given = Classifier(build_model("softmax"), backend="eager", chunk_size=64, cache_dir=tmp_path)
    assert not tuning.note_achieved_rate(given.choice, 1e12, seconds=60)  # never cached
    assert lines == [] and _cached_classifier(tmp_path).choice.how == "cached"
    # Far above it: the entry is dropped, the user told in one line, and measured next time.
    assert tuning.note_achieved_rate(choice, 2 * recorded, seconds=60, log=lines.append)
    assert len(lines) == 1 and "measured again" in lines[0] and "\n" not in lines[0]
    assert json.loads((tmp_path / tuning.CACHE_FILE).read_text()) == {}
    assert _cached_classifier(tmp_path).choice.how == "measured"


def test_a_newer_measurement_is_not_dropped(tmp_path: Path) -> None:
    _cached_classifier(tmp_path)
    old = _cached_classifier(tmp_path).choice
    assert old.images_per_s
    _edit_cache(tmp_path, measured="2099-01-01 00:00 UTC")  # another process measured since
    assert not tuning.note_achieved_rate(old, 10 * old.images_per_s, seconds=60)
    assert _cached_classifier(tmp_path).choice.how == "cached"


def test_backends_command_says_why_and_when(tiny_model: Path, tmp_path: Path) -> None:
    env = {"IDENTIKIT_DATA": str(tmp_path / "data")}
    args = ("backends", "--model", str(tiny_model), "--backend", "channels_last")
    assert run_cli(*args, env=env).returncode == 0
    cache = tmp_path / "data" / "backends"
    _edit_cache(cache, passed_over={"compile": "its 6.1 s compilation does not pay back"})
    proc = run_cli(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "compile                      not chosen: its 6.1 s compilation" in proc.stdout
    chosen = proc.stdout.strip().splitlines()[-1]
    assert chosen.startswith("chosen: channels_last") and "not chosen: its 6.1 s" in chosen
    assert "cached; identikit backends --remeasure to measure again]" in chosen
    record = json.loads(run_cli(*args, "--json", env=env).stdout.strip().splitlines()[-1])
    assert record["passed_over"] == {"compile": "its 6.1 s compilation does not pay back"}
    assert "cache_dir" not in record and "cache_key" not in record

"""``make demo``'s pipeline (``identikit demo``) on the real MNIST, with the softmax model only
(the CNN's two epochs would take minutes): every step writes its files, and a second run reuses
the checkpoint and the finished sweep."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from identikit.base.errors import DifferentSweepError, IdentikitError
from identikit.cli import demo
from identikit.sweeps.folder import read_sweep_folder
from identikit.sweeps.result_files import read_certainty


@pytest.mark.mnist
@pytest.mark.slow
def test_the_demo_runs_every_step_and_reuses_its_work(
    mnist_root: Path,
    mnist_softmax: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(demo, "DEMO_MODELS", ("softmax",))
    # The softmax model's digits drawn from it alone, briefly, and judged by another softmax
    # model: the steps, not the verdicts, are under test here.
    monkeypatch.setattr(demo, "RECONSTRUCTED", "softmax")
    monkeypatch.setattr(
        demo,
        "RECONSTRUCTIONS",
        {"black-box": ("pen-evolution", 1, 3), "reconstruct": ("reconstruct", 1, 5)},
    )
    monkeypatch.setattr(demo, "DEMO_JUDGES", (str(mnist_softmax),))
    out = tmp_path / "demo"
    assert demo.run_demo(out, device="cpu", root=mnist_root) == 0
    first = capsys.readouterr().out
    assert "training softmax" in first and "softmax: largest softmax output" in first
    sweep = read_sweep_folder(out / "softmax" / "search")
    assert sweep.config.runs == demo.DEMO_RUNS and len(sweep.images) == 10 * demo.DEMO_RUNS
    assert set(read_certainty(out / "softmax")) >= {"mnist-test", "uniform-noise"}
    assert (out / "report.html").is_file() and (out / "softmax" / "certainty.png").is_file()
    for name in ("black-box", "reconstruct"):
        drawn = read_sweep_folder(out / "softmax" / name)
        assert drawn.results["uses_data"] is False and len(drawn.images) == 10
        assert (out / "softmax" / name / "judge.json").is_file()
    page = (out / "report.html").read_text()
    # The report opens with the summary: a row per judged sweep, with a sentence each (the
    # original method reads no data either).
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Models</h2>")
    assert page.count("drawn from the model alone: the independent judges") == 3
    assert demo.run_demo(out, device="cpu", root=mnist_root) == 0
    again = capsys.readouterr().out
    assert f"softmax: reusing {out / 'softmax.pt'}" in again and "training softmax" not in again
    assert read_sweep_folder(out / "softmax" / "search").results["runs"] == sweep.results["runs"]


def test_a_linked_sweep_folder_of_another_sweep_is_one_line_and_kept(tmp_path: Path) -> None:
    """The demo empties a folder holding an earlier version's sweep; one that is a link leads
    somewhere that is not the demo's, and is refused rather than emptied (or a traceback)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "results.json").write_text("a user's sweep")
    folder = tmp_path / "sweep"
    folder.symlink_to(elsewhere)

    def different(_: Path) -> NoReturn:
        raise DifferentSweepError(f"{folder} already holds a different sweep")

    with pytest.raises(IdentikitError, match="is a link and holds another sweep") as error:
        demo.afresh_if_different(folder, different)
    assert "\n" not in str(error.value)
    assert (elsewhere / "results.json").read_text() == "a user's sweep"

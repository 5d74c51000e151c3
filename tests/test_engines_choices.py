"""Engine choices and their cache: rate labels as values, the cache's format version, and
hand-edited or damaged entries measured again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from identikit.base.errors import IdentikitError
from identikit.classifier.classifier import Classifier
from identikit.engines import choices
from identikit.engines.choices import Choice, Trial
from identikit.engines.options import EngineOptions
from identikit.models import build_model
from tests.helpers import channels_last_softmax, edit_cached_choices, seeded_linear

pytestmark = pytest.mark.usefixtures("quick_measurements", "torch_threads")


def test_rate_labels_are_values() -> None:
    for label, trial in [
        ("onnx@512", Trial("onnx", 512)),
        ("channels_last@64x1threads", Trial("channels_last", 64, 1)),
    ]:
        assert Trial.parse(label) == trial and trial.label == label
    for other in ("compile-start-s", "onnx@", "onnx@x", "@64", "onnx@64x2", "onnx@64threads"):
        assert Trial.parse(other) is None
    choice = Choice(
        "onnx",
        "fp32",
        512,
        2,
        rates={"onnx@512": 7.0, "eager@64": 5.0, "compile-start-s": 3.1, "onnx@512x1threads": 8.0},
    )
    assert choice.trials() == {
        Trial("onnx", 512): 7.0,
        Trial("eager", 64): 5.0,
        Trial("onnx", 512, 1): 8.0,
    }
    assert "eager 5;" in choice.summary() + ";"  # the best of each other engine, once


def test_the_cache_is_written_with_its_version_and_read_back(tmp_path: Path) -> None:
    first = channels_last_softmax(tmp_path)
    assert first.choice.how == "measured"
    document = json.loads((tmp_path / choices.CACHE_FILE).read_text())
    assert document["version"] == choices.CACHE_VERSION == 2
    (entry,) = document["choices"].values()
    assert entry == first.choice.record()
    assert channels_last_softmax(tmp_path).choice.how == "cached"


def test_a_cache_written_before_versions_is_read(tmp_path: Path) -> None:
    first = channels_last_softmax(tmp_path)
    path = tmp_path / choices.CACHE_FILE
    flat = json.loads(path.read_text())["choices"]  # version 1: the choices by key, bare
    path.write_text(json.dumps(flat))
    assert choices.read_choices(tmp_path) == flat
    again = channels_last_softmax(tmp_path)
    assert again.choice.how == "cached" and again.choice.record() == first.choice.record()


def test_a_cache_of_a_newer_identikit_is_refused_in_one_line(tmp_path: Path) -> None:
    channels_last_softmax(tmp_path)
    path = tmp_path / choices.CACHE_FILE
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "version": 3}))
    for remeasure in (False, True):  # refused before anything is measured
        engine = EngineOptions(backend="channels_last", cache_dir=tmp_path, remeasure=remeasure)
        with pytest.raises(IdentikitError) as error:
            Classifier(build_model("softmax"), engine=engine)
        message = str(error.value)
        assert "\n" not in message and str(path) in message
        assert "newer identikit (format version 3; this one reads up to 2)" in message
    assert json.loads(path.read_text())["version"] == 3  # left as it was


def test_a_damaged_version_is_an_empty_cache(tmp_path: Path) -> None:
    channels_last_softmax(tmp_path)
    path = tmp_path / choices.CACHE_FILE
    for version in ("2", 0, None, 2.5):
        path.write_text(json.dumps({"version": version, "choices": {}}))
        assert choices.read_choices(tmp_path) == {}
    assert channels_last_softmax(tmp_path).choice.how == "measured"


def test_a_cached_choice_says_when_and_how_to_measure_again(tmp_path: Path) -> None:
    first = channels_last_softmax(tmp_path)
    assert first.choice.how == "measured" and "[measured now, cached]" in first.choice.summary()
    second = channels_last_softmax(tmp_path)
    assert second.choice.how == "cached" and second.choice.measured == first.choice.measured
    assert second.choice.summary().endswith(
        f"[measured {first.choice.measured}, cached; "
        "identikit backends --remeasure to measure again]"
    )
    assert second.choice.images_per_s == first.choice.images_per_s  # exposed for sweeps


def test_passed_over_is_cached_and_validated(tmp_path: Path) -> None:
    channels_last_softmax(tmp_path)
    edit_cached_choices(
        tmp_path, passed_over={"compile": "its 6.1 s compilation does not pay back"}
    )
    cached = channels_last_softmax(tmp_path).choice
    assert cached.how == "cached" and cached.passed_over["compile"].startswith("its 6.1 s")
    # A cache written before the field existed is still read ...
    edit_cached_choices(tmp_path, passed_over=None)
    assert channels_last_softmax(tmp_path).choice.how == "cached"
    # ... but a hand-edited one that holds something else is measured again.
    edit_cached_choices(tmp_path, passed_over={"compile": 3})
    assert channels_last_softmax(tmp_path).choice.how == "measured"
    edit_cached_choices(
        tmp_path, cache_dir="/elsewhere"
    )  # this process's own fields are not recorded
    assert channels_last_softmax(tmp_path).choice.how == "measured"


def only_entry(cache: Path) -> dict[str, Any]:
    entries = choices.read_choices(cache)
    assert len(entries) == 1
    (entry,) = entries.values()
    assert isinstance(entry, dict)
    return entry


def channels_last(cache: Path) -> Classifier:
    """A classifier whose chunk size (and thread count) is measured, or read from ``cache``."""
    return Classifier(
        seeded_linear(), engine=EngineOptions(backend="channels_last", cache_dir=cache)
    )


def assert_valid_and_kept(classifier: Classifier, cache: Path) -> None:
    """The choice was measured, written over what was cached, and is read back next time."""
    choice = classifier.choice
    assert choice.how == "measured"
    assert only_entry(cache) == choice.record()
    assert type(choice.threads) is int and 1 <= choice.threads <= choices.PROCESS_THREADS
    assert torch.get_num_threads() == choice.threads  # applied, and sane
    again = channels_last(cache)
    assert again.choice.how == "cached" and again.choice.record() == choice.record()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threads", 100_000),
        ("threads", 0),
        ("threads", "2"),
        ("chunk_size", True),
        ("chunk_size", -5),
        ("chunk_size", 10**12),
        ("backend", "tensorrt"),
        ("backend", "eager"),  # a real engine, but not the one asked for
        ("precision", "int8"),
        ("images_per_s", -1.0),
        ("images_per_s", 1e999),  # JSON's way to write infinity
        ("rates", [1, 2]),
        ("rates", {"eager@64": "fast"}),
        ("skipped", {"onnx": 3}),
        ("measured", 20240101),
        ("surprise", 1),  # a field no choice has
    ],
)
def test_hand_edited_cache_entries_are_measured_again(
    field: str, value: object, tmp_path: Path
) -> None:
    first = channels_last(tmp_path)
    assert first.choice.how == "measured"
    entries = choices.read_choices(tmp_path)
    for entry in entries.values():
        entry[field] = value
    choices.save_choices(tmp_path, entries)
    assert_valid_and_kept(channels_last(tmp_path), tmp_path)


def test_a_cache_file_that_is_no_json_object_or_no_file_is_replaced(tmp_path: Path) -> None:
    not_an_object = tmp_path / "list"
    not_an_object.mkdir()
    (not_an_object / choices.CACHE_FILE).write_text("[]")
    assert_valid_and_kept(channels_last(not_an_object), not_an_object)
    folder = tmp_path / "folder"
    (folder / choices.CACHE_FILE).mkdir(parents=True)  # an empty folder where the file belongs
    assert_valid_and_kept(channels_last(folder), folder)
    assert (folder / choices.CACHE_FILE).is_file()


def test_the_default_backends_folder_is_never_written_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("IDENTIKIT_DATA", str(data_root))
    backends = EngineOptions().cache_folder
    backends.symlink_to(outside)
    choices.save_choices(backends, {"key": {"engine": "eager"}})  # a cache: refused quietly
    with pytest.raises(IdentikitError, match="is a link"):
        choices.make_cache_folder(backends, backends / "onnx")
    assert list(outside.iterdir()) == []
    # A cache folder the user names is theirs, a link of theirs included.
    named = tmp_path / "named"
    named.symlink_to(outside)
    choices.save_choices(named, {"key": {"engine": "eager"}})
    choices.make_cache_folder(named, named / "onnx")
    assert sorted(p.name for p in outside.iterdir()) == [choices.CACHE_FILE, "onnx"]

"""The data-free guard: while a data-free run is under way no dataset is read or fetched."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from identikit.base.data_free import data_allowed, data_free
from identikit.base.errors import IdentikitError
from identikit.data.datasets import ensure_files
from identikit.data.images import load_images
from identikit.strategies.priors import PriorNeeds
from identikit.sweeps.training_data import prior_inputs


def test_no_dataset_is_read_or_fetched_inside(tiny_dataset: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with data_free("the test run"):
        assert not data_allowed()
        for read in (
            lambda: load_images("tiny", tiny_dataset),
            lambda: load_images("shapes"),
            lambda: ensure_files("mnist", empty),
            lambda: prior_inputs(PriorNeeds(subspace_components=5), "tiny", tiny_dataset),
        ):
            with pytest.raises(IdentikitError, match="the test run is data-free: it may not read"):
                read()
        # Worker threads are held to it too.
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                load_images("tiny", tiny_dataset)
            except IdentikitError as exc:
                errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert len(errors) == 1
    assert list(empty.iterdir()) == []
    # Outside, data is read again.
    assert data_allowed()
    assert len(load_images("tiny", tiny_dataset).train_images) > 0

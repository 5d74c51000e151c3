"""identikit: what does a trained image classifier believe a class looks like?

The public API mirrors the command line (see README "From Python")::

    import identikit

    classifier = identikit.load_classifier("cnn.pt")
    result = identikit.search(classifier, identikit.SweepConfig(digits=(3,), runs=2))
    result.images, result.runs, result.summary  # in a notebook, `result` draws its grid
"""

from __future__ import annotations

from identikit.api import (
    CertaintyResult,
    ComparisonResult,
    JudgeResult,
    Report,
    Run,
    SearchResult,
    Stopped,
    certainty,
    compare,
    evaluate,
    judge,
    reconstruct,
    report,
    search,
)
from identikit.base.errors import IdentikitError
from identikit.base.shapes import ImageShape
from identikit.classifier import Classifier, load_classifier
from identikit.cluster.ray_sweep import RayCluster
from identikit.data.datasets import load_dataset, load_mnist
from identikit.data.image_set import ImageSet
from identikit.data.images import load_images
from identikit.engines.options import EngineOptions
from identikit.models.checkpoint import load_checkpoint, load_model
from identikit.models.info import Expected, ModelInfo
from identikit.models.preprocessing import Preprocessing
from identikit.strategies.base import RunHooks
from identikit.studies.judge import JudgeSetup
from identikit.sweeps.compare import Comparison
from identikit.sweeps.experiment import SweepConfig
from identikit.sweeps.sweep import SweepOptions
from identikit.training.trainer import TrainSpec, train

__all__ = [
    "CertaintyResult",
    "Classifier",
    "Comparison",
    "ComparisonResult",
    "EngineOptions",
    "Expected",
    "IdentikitError",
    "ImageSet",
    "ImageShape",
    "JudgeResult",
    "JudgeSetup",
    "ModelInfo",
    "Preprocessing",
    "RayCluster",
    "Report",
    "Run",
    "RunHooks",
    "SearchResult",
    "Stopped",
    "SweepConfig",
    "SweepOptions",
    "TrainSpec",
    "certainty",
    "compare",
    "evaluate",
    "judge",
    "load_checkpoint",
    "load_classifier",
    "load_dataset",
    "load_images",
    "load_mnist",
    "load_model",
    "reconstruct",
    "report",
    "search",
    "train",
]
__version__ = "0.1.0"

"""The Python API for notebooks and scripts: the commands as functions with typed results."""

from identikit.api.calls import (
    ModelLike,
    Stopped,
    certainty,
    classifier_of,
    compare,
    evaluate,
    judge,
    reconstruct,
    report,
    search,
)
from identikit.api.results import (
    CertaintyResult,
    ComparisonResult,
    JudgeResult,
    Report,
    Run,
    SearchResult,
)

__all__ = [
    "CertaintyResult",
    "ComparisonResult",
    "JudgeResult",
    "ModelLike",
    "Report",
    "Run",
    "SearchResult",
    "Stopped",
    "certainty",
    "classifier_of",
    "compare",
    "evaluate",
    "judge",
    "reconstruct",
    "report",
    "search",
]

"""Is a judge worth hearing? Its own accuracy on the dataset's test images, beside its verdict.

A judge's agreement with the identikits means something only if the judge recognises real
images of the same classes: a model fed pixels in the wrong convention (no mean and std where
it wants them), or trained on a hundred images, calls the identikits "their class" at chance
and the verdict reads as a fact about the identikits. So every judge is scored on the test
images of the dataset it judges with, and that accuracy is recorded and shown beside its
agreement (``judge_info`` in ``judge.json``).

identikit's own judges (the built-in ones, trained on first use) are refused, in one line and
before any verdict, where they could not be worth hearing: trained on fewer than
:data:`MIN_TRAINING_IMAGES` images (refused before training), or below :data:`MIN_ACCURACY`
on the test images. A model file of the user's own below that accuracy is warned about, not
refused: it is the user's choice of judge, its accuracy stands beside its verdict in every
output, and a model that is right on its own data may score low on another copy of it (a
JPEG-compressed test set, say); the warning names the conventions to check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from identikit.base.errors import IdentikitError
from identikit.classifier import Classifier
from identikit.data.image_set import ImageSet
from identikit.training.evaluation import evaluate_classifier

# Fewer training images than this and a built-in judge is not trained at all: the colour
# judges trained on 100 images each said 10% (chance) on every identikit.
MIN_TRAINING_IMAGES = 1_000
# Below this accuracy on real test images, a judge's verdict says more about the judge.
MIN_ACCURACY = 0.5

BUILT_IN, FILE = "built-in", "file"


@dataclass(frozen=True)
class JudgeQuality:
    """A judge's accuracy on ``test_images`` real images of ``dataset`` (its test split, or
    the share held out of one without), what kind of judge it is, and its file (None for a
    built-in one)."""

    accuracy: float
    test_images: int
    dataset: str
    kind: str
    file: str | None

    def record(self) -> dict[str, Any]:
        """As ``judge.json``'s ``judge_info`` keeps it."""
        return {
            "accuracy": self.accuracy,
            "test_images": self.test_images,
            "dataset": self.dataset,
            "kind": self.kind,
            "file": self.file,
        }


def check_trainable(names: Sequence[str], built_in: Sequence[str], data: ImageSet) -> None:
    """Refuse, before anything is trained, built-in judges for a dataset too small to train
    them on (``names``: the judges asked for; ``built_in``: the built-in judges' names)."""
    asked = [name for name in names if name in built_in]
    count = len(data.train_images)
    if asked and count < MIN_TRAINING_IMAGES:
        raise IdentikitError(
            f"judge {asked[0]}: {data.name} has {count:,} training images, and a built-in judge "
            f"needs at least {MIN_TRAINING_IMAGES:,} to be worth hearing: name a model file "
            "of your own in --judges instead"
        )


def judge_quality(
    classifier: Classifier, data: ImageSet, *, dataset: str, file: str | None
) -> JudgeQuality:
    """``classifier``'s accuracy on the test images of ``data`` (read from the spec
    ``dataset``); ``file``: the judge's model file, None for a built-in judge."""
    images, labels = data.split("test")
    if classifier.num_classes != data.classes or classifier.info.input_shape != data.shape:
        # A judge of other classes or another image shape cannot score these images; it is
        # refused by name, with the identikits', when it comes to judge them.
        return JudgeQuality(0.0, 0, dataset, FILE if file else BUILT_IN, file)
    accuracy = evaluate_classifier(classifier, images, labels).accuracy
    return JudgeQuality(accuracy, len(images), dataset, FILE if file else BUILT_IN, file)


def check_quality(
    name: str, quality: JudgeQuality, log: Callable[[str], None] | None, conventions_text: str
) -> None:
    """Refuse a built-in judge below :data:`MIN_ACCURACY`; warn (through ``log``) of a file
    judge below it, naming the conventions it was given (``conventions_text``)."""
    if quality.test_images == 0 or quality.accuracy >= MIN_ACCURACY:
        return
    scored = (
        f"{quality.accuracy:.1%} accurate on {quality.test_images:,} test images of "
        f"{quality.dataset}"
    )
    if quality.kind == BUILT_IN:
        raise IdentikitError(
            f"judge {name} is {scored} (below {MIN_ACCURACY:.0%}): its verdict would mean "
            "nothing; train it longer (--judge-epochs) or name a model file of your own"
        )
    if log is not None:
        log(
            f"warning: judge {name} is {scored} (below {MIN_ACCURACY:.0%}); its verdict may mean "
            f"little: check the conventions it was given ({conventions_text})"
        )

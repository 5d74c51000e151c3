"""The Classifier (what searches see of a model), how a model file becomes one, how it is
probed, and how its scoring engines are chosen."""

from identikit.classifier.classifier import Classifier
from identikit.classifier.loading import load_classifier

__all__ = ["Classifier", "load_classifier"]

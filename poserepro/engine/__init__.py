"""The engine: build a recipe's model, train it (:func:`train`), evaluate it (:func:`evaluate`); every model
family through the protocol of :mod:`poserepro.families`."""

from .build import build_model, seed_everything
from .evaluate import EvalResult, evaluate
from .loop import TrainResult, train

__all__ = ["EvalResult", "TrainResult", "build_model", "evaluate", "seed_everything", "train"]

"""Model families: one protocol (:class:`ModelFamily`) for data, loss and read-out of every kind of model.

Importing this package registers the built-in families: heatmap (TransPose, BTranspose, SimpleBaseline),
set / regression (two-stage PRTR, TFPose), whole-image (end-to-end PRTR) and detection (PRTR's person detector).
"""

from . import detection, heatmap, set_regression, whole_image  # noqa: F401  (registers the families)
from .base import Criterion, EvalData, ModelFamily, Predictions, ProgressFn, family_of, register_family, unwrap
from .topdown import TopDownFamily

__all__ = ["Criterion", "EvalData", "ModelFamily", "Predictions", "ProgressFn", "TopDownFamily", "family_of",
           "register_family", "unwrap"]

"""Run a model on one's own images and videos: inputs, person boxes, the family's read-out, drawn output."""

from .boxes import BoxFile, load_box_file
from .predict import Frame, predict_frames
from .run import InferOptions, Summary, run_inference
from .sources import Sources, discover

__all__ = ["BoxFile", "Frame", "InferOptions", "Sources", "Summary", "discover", "load_box_file", "predict_frames",
           "run_inference"]

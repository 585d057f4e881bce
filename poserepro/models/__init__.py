"""Model zoo. Importing this package registers every model (see :mod:`poserepro.models.registry`)."""

from . import btranspose, person_detr, prtr, prtr_e2e, simplebaseline, tfpose, transpose  # noqa: F401
from .registry import create_model, list_models, model_entrypoint, register_model  # noqa: F401

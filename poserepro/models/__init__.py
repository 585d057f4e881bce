"""Model zoo. Importing this package registers every model (see :mod:`poserepro.registry`)."""

from . import btranspose, prtr, prtr_e2e, simplebaseline, tfpose, transpose  # noqa: F401

"""Model zoo. Importing this package registers every model (see :mod:`poserepro.registry`)."""

from . import transpose  # noqa: F401

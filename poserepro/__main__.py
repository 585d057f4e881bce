"""``python -m poserepro``: the command line."""

from .cli.main import main

main()

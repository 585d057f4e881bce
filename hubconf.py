"""torch.hub entry points: every registered poserepro model, by name.

    import torch
    model = torch.hub.load("REPO", "transpose_r_a4", pretrained=True)   # REPO: GitHub owner/name or a local clone
    torch.hub.list("REPO")                                              # every model name

``pretrained=True`` loads the authors' released checkpoint through the weights catalogue (TransPose models);
see :mod:`poserepro.weights.hub`.
"""

dependencies = ["torch", "numpy", "scipy", "yaml"]

from poserepro.weights.hub import entrypoints as _entrypoints  # noqa: E402

globals().update(_entrypoints())

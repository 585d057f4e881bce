"""Model weights from outside a training run: official checkpoints and their key maps, transfer between joint
sets (:mod:`.official`, :mod:`.prtr`, :mod:`.state`)."""

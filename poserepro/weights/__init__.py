"""Model weights from outside a training run: official checkpoints and their key maps, transfer between joint
sets (:mod:`.official`, :mod:`.prtr`, :mod:`.state`), and starting points: the catalogue of known files
(:mod:`.catalogue`), the ``model.init`` grammar (:mod:`.init`) and the part-of-a-model key maps (:mod:`.keymaps`)."""

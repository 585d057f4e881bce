"""Self-supervised pretraining of pose-model backbones: DINO (Caron et al. 2021) as BTranspose used it.

Modules, one job each: :mod:`.head` (DINOHead), :mod:`.multicrop` (backbone features + the multi-crop wrapper),
:mod:`.loss` (DINO loss with centering and the teacher-temperature schedule), :mod:`.optim` (per-iteration
schedules, parameter groups, LARS, per-tensor clipping, last-layer freezing), :mod:`.augment` (multi-crop
augmentation in OpenCV/numpy), :mod:`.data` (image folder, COCO person crops, the synthetic benchmark),
:mod:`.recipe` (the pretraining recipe), :mod:`.knn` (weighted k-NN probe), :mod:`.train` (the loop, resumable).
"""

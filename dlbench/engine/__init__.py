"""Engine: how a stack of models is trained and where its work runs. The trainer (one loop, its
regimens, the exactness contract), the regularizer registry, predictions, test-time augmentation,
checkpoints, size and memory estimates, cells (keyed tasks) and their executors.

Layer 3. May import the foundation, `data`, `nn` and `optim`; never `evaluate` or above: the engine
trains and predicts, it does not judge.
"""

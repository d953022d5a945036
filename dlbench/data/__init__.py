"""Data: the datasets registry and its loaders (CSV, NPZ, IDX, generated sets), the on-disk cache,
the splitters (scikit-learn's, keyed by seed), preprocessing fitted on training rows, augmentation.

Layer 1. May import the foundation modules at the package root (errors, registry, grammar, seeding,
results) and nothing else of dlbench: data knows no models, no training and no commands.
"""

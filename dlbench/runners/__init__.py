"""Runners: one per command, each deciding *what* to train (cv, optimize with its function and
tuning parts, overfit, transfer, and the grid they share) and leaving *how* to the engine.

Layer 5, beside `output`. May import every layer up to `evaluate`; never `output` or `cli`.
"""

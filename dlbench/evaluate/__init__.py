"""Evaluation: what a trained member's numbers mean. Metrics (scikit-learn's), intervals and tests
(scipy's), status words and verdicts, the tidy rows, run-against-run comparison and ranking.

Layer 4. May import everything below it (the foundation, `data`, `nn`, `optim`, `engine`); never
`runners`, `output` or `cli`.
"""

"""Output: what a user reads. Rich tables, PNG plots, the HTML report and the progress bar. The
results directory format itself (atomic files, manifest, checksums) is the foundation module
`dlbench.results`, because the engine and `compare` read and write it too.

Layer 5, beside `runners`. May import every layer up to `evaluate`; never `runners` or `cli`.
"""

"""Optimisation: the optimizer registry (torch.optim classes with their defaults and the grammar
`name[k=v]`), learning-rate schedules, and the 2-D test functions that optimizers are drawn on.

Layer 2, beside `nn`. May import the foundation and `data`; never `nn`, the engine or above.
"""

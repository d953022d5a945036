"""Networks: the stacked layers (M members' weights in one tensor), the model, activation and
initialisation registries, the user's own modules stacked with torch.func (plugged.py), and the
initialisation study of activations per layer.

Layer 2, beside `optim`. May import the foundation and `data`; never `optim`, the engine or above.
"""

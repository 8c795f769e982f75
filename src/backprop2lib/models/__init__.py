from .mlp import ACTIVATIONS, INITS, MLP, Params

__all__ = ["ACTIVATIONS", "INITS", "MLP", "Params"]

from .activations import ACTIVATIONS, activation, activation_and_slope, activation_derivatives
from .mlp import INITS, MLP, Params

__all__ = ["ACTIVATIONS", "INITS", "MLP", "Params", "activation", "activation_and_slope", "activation_derivatives"]

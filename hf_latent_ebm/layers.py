"""Small building blocks the parts share."""

from torch import nn


def mlp(input_dim: int, hidden_dim: int, num_hidden_layers: int, output_dim: int | None = None) -> nn.Sequential:
    """Linear + GELU hidden layers, then a Linear output layer when `output_dim` is given."""
    layers, width = [], input_dim
    for _ in range(num_hidden_layers):
        layers += [nn.Linear(width, hidden_dim), nn.GELU()]
        width = hidden_dim
    if output_dim is not None:
        layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


__all__ = ["mlp"]

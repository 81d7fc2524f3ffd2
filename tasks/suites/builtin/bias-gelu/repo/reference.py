"""PyTorch reference for the bias-gelu kernel task: gelu(x + bias), exact (erf) GELU, the
bias broadcast over the rows of a 2-D x."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x + bias)


batch_size = 4096
dim = 4000


def get_inputs():
    return [torch.randn(batch_size, dim), torch.randn(dim)]


def get_init_inputs():
    return []

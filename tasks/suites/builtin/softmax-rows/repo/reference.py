"""PyTorch reference for the softmax-rows kernel task: row-wise softmax."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(256, 2048)]


def get_init_inputs():
    return []

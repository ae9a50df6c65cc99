"""Small PyTorch models for the flavor tests (importable, as a state_dict model's class must be)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, features: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layer(x), dim=-1)

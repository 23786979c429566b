"""The MLP connector of MM-SeR / LLaVA-1.5 (Liu et al.): vision patch features -> LM input embeddings."""

from __future__ import annotations

import torch
from torch import nn


class MLPConnector(nn.Module):
    """``layers`` linear layers with GELU between them (MM-SeR uses 4), from ``in_dim`` to ``out_dim``."""

    def __init__(self, in_dim: int, out_dim: int, layers: int = 4) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the connector needs at least one layer, got {layers}")
        modules: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(layers - 1):
            modules += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.net = nn.Sequential(*modules)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, patches, in_dim)`` -> ``(batch, patches, out_dim)``."""
        return self.net(features)

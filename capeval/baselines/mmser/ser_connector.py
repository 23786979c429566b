"""The SeR-Connector of MM-SeR (Song et al.): caption-guided visual tokens for the refinement pass.

Patch features from several vision layers are concatenated per patch and projected; the initial caption's token
embeddings (from the LM's own embedding table) are projected to the same width; both sequences, tagged with a
type embedding, go through a few Transformer blocks, so every patch token can attend to the words of the coarse
caption (and to the other patches). The patch positions of the output, mapped by an MLP to the LM's embedding
width, are the visual tokens of the refinement pass.
"""

from __future__ import annotations

import torch
from torch import nn


class SeRConnector(nn.Module):
    """Transformer blocks over ``[multi-layer patch features ; initial-caption embeddings]``."""

    def __init__(
        self,
        vision_dim: int,
        num_vision_layers: int,
        text_dim: int,
        out_dim: int,
        hidden_size: int = 768,
        num_layers: int = 2,
        num_heads: int = 12,
        max_text_positions: int = 256,
        zero_init_output: bool = True,
    ) -> None:
        super().__init__()
        self.max_text_positions = max_text_positions
        self.vision_norm = nn.LayerNorm(vision_dim * num_vision_layers)
        self.vision_in = nn.Linear(vision_dim * num_vision_layers, hidden_size)
        self.text_in = nn.Linear(text_dim, hidden_size)
        self.type_embed = nn.Embedding(2, hidden_size)
        self.text_pos = nn.Embedding(max_text_positions, hidden_size)
        block = nn.TransformerEncoderLayer(
            hidden_size, num_heads, dim_feedforward=4 * hidden_size, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, num_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(hidden_size)
        self.out = nn.Sequential(nn.Linear(hidden_size, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.zero_init_output = zero_init_output
        self.reset_output()

    def reset_output(self) -> None:
        """Start the last layer at zero when the output is added to the connector's tokens (``ser_residual``)."""
        if self.zero_init_output:
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)

    def forward(
        self,
        vision_features: list[torch.Tensor],
        caption_embeds: torch.Tensor,
        caption_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Visual tokens for the refinement pass.

        Args:
            vision_features: one ``(batch, patches, vision_dim)`` tensor per configured vision layer.
            caption_embeds: ``(batch, words, text_dim)`` embeddings of the initial caption.
            caption_mask: ``(batch, words)``, 1 for real tokens, 0 for padding.

        Returns:
            ``(batch, patches, out_dim)``.
        """
        vis = self.vision_in(self.vision_norm(torch.cat(vision_features, dim=-1)))
        caption_embeds = caption_embeds[:, : self.max_text_positions]
        caption_mask = caption_mask[:, : self.max_text_positions]
        positions = torch.arange(caption_embeds.shape[1], device=caption_embeds.device)
        txt = self.text_in(caption_embeds.to(vis.dtype)) + self.text_pos(positions)[None]
        vis = vis + self.type_embed.weight[0]
        txt = txt + self.type_embed.weight[1]
        seq = torch.cat([vis, txt], dim=1)
        pad = torch.cat([torch.zeros(vis.shape[:2], dtype=torch.bool, device=vis.device),
                         caption_mask.to(vis.device) == 0], dim=1)
        hidden = self.blocks(seq, src_key_padding_mask=pad)
        return self.out(self.out_norm(hidden[:, : vis.shape[1]]))

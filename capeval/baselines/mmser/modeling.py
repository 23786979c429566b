"""MM-SeR (Song et al., "MM-SeR: Multimodal Self-Refinement for Lightweight Image Captioning") as a HF model.

A vision encoder's patch tokens (penultimate layer) pass through a 4-layer GELU MLP connector into a small causal
LM (OPT-125M) as ``inputs_embeds``: the initial, coarse caption. For the refinement pass the SeR-Connector reads
several vision layers together with the initial caption's token embeddings and produces new visual tokens; the
LM sees them followed by the initial caption as a text prompt and writes the refined caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from capeval.baselines.mmser.configuration import MMSeRConfig, default_ser_layers
from capeval.baselines.mmser.connector import MLPConnector
from capeval.baselines.mmser.processing import IGNORE_INDEX
from capeval.baselines.mmser.ser_connector import SeRConnector

PARTS = ("vision", "connector", "ser", "lm")


@dataclass
class MMSeROutput(ModelOutput):
    """Loss (when labels are given) and next-token logits over the text positions only."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    visual_tokens: torch.Tensor | None = None


class MMSeRForCaptioning(PreTrainedModel):
    """Vision encoder + MLP connector + causal LM, with the SeR-Connector for self-refinement."""

    config_class = MMSeRConfig
    base_model_prefix = "mmser"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False

    def __init__(self, config: MMSeRConfig) -> None:
        super().__init__(config)
        self.vision_model = AutoModel.from_config(config.vision_config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        vision_dim = config.vision_config.hidden_size
        embed_dim = self.language_model.get_input_embeddings().embedding_dim
        self.connector = MLPConnector(vision_dim, embed_dim, config.connector_layers)
        self.ser_connector = SeRConnector(
            vision_dim=vision_dim, num_vision_layers=len(config.ser_feature_layers), text_dim=embed_dim,
            out_dim=embed_dim, hidden_size=config.ser_hidden_size, num_layers=config.ser_num_layers,
            num_heads=config.ser_num_heads, max_text_positions=config.ser_max_text_positions,
            zero_init_output=config.ser_residual,
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Sub-models initialise themselves; keep the SeR output layer at zero when it is residual."""
        if isinstance(module, SeRConnector):
            module.reset_output()

    # ------------------------------------------------------------------ building from pretrained parts
    @classmethod
    def from_components(cls, vision_name_or_path: str, text_name_or_path: str, **config_kwargs):
        """A new MM-SeR model around pretrained parts (hub ids or local folders); connectors start random.

        ``vision_name_or_path`` may hold a full CLIP/SigLIP checkpoint (its vision tower is used) or a vision
        model alone; ``text_name_or_path`` any causal LM. Unless given, the SeR-Connector reads the layers
        that 13, 18 and 23 of CLIP-L's 24 correspond to in this encoder (:func:`default_ser_layers`).
        """
        vcfg = AutoConfig.from_pretrained(vision_name_or_path)
        vcfg = getattr(vcfg, "vision_config", vcfg)
        vision_cls = AutoModel._model_mapping[type(vcfg)]
        vision = vision_cls.from_pretrained(vision_name_or_path)
        lm = AutoModelForCausalLM.from_pretrained(text_name_or_path)
        config_kwargs.setdefault("vision_num_prefix_tokens", 1 if "clip" in vcfg.model_type else 0)
        config_kwargs.setdefault("image_size", getattr(vcfg, "image_size", 224))
        config_kwargs.setdefault("ser_feature_layers", default_ser_layers(vcfg.num_hidden_layers))
        config_kwargs.setdefault("pad_token_id", lm.config.pad_token_id)
        config_kwargs.setdefault("bos_token_id", lm.config.bos_token_id)
        config_kwargs.setdefault("eos_token_id", lm.config.eos_token_id)
        config = MMSeRConfig(vision_config=vision.config.to_dict(), text_config=lm.config.to_dict(),
                             vision_name_or_path=str(vision_name_or_path),
                             text_name_or_path=str(text_name_or_path), **config_kwargs)
        model = cls(config)
        model.vision_model.load_state_dict(vision.state_dict())
        model.language_model.load_state_dict(lm.state_dict())
        return model

    # ------------------------------------------------------------------ training helpers
    def set_trainable(self, parts: Sequence[str]) -> None:
        """Freeze every part except ``parts`` (some of ``vision``, ``connector``, ``ser``, ``lm``)."""
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown model parts {sorted(unknown)}; expected some of {PARTS}")
        modules = {"vision": self.vision_model, "connector": self.connector, "ser": self.ser_connector,
                   "lm": self.language_model}
        for name, module in modules.items():
            for p in module.parameters():
                p.requires_grad_(name in parts)

    # ------------------------------------------------------------------ the tensor paths
    def encode_images(self, pixel_values: torch.Tensor) -> dict[int, torch.Tensor]:
        """Patch tokens ``(batch, patches, vision_dim)`` of every vision layer the model reads, by layer index."""
        cfg = self.config
        dtype = next(self.vision_model.parameters()).dtype
        out = self.vision_model(pixel_values=pixel_values.to(dtype), output_hidden_states=True)
        hidden = out.hidden_states
        wanted = {cfg.vision_feature_layer, *cfg.ser_feature_layers}
        start = cfg.vision_num_prefix_tokens
        return {layer: hidden[layer][:, start:] for layer in wanted}

    def initial_visual_tokens(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        """Visual tokens of the initial pass: the MLP connector on the penultimate layer's patches."""
        return self.connector(features[self.config.vision_feature_layer])

    def refine_visual_tokens(self, features: dict[int, torch.Tensor], initial_ids: torch.Tensor,
                             initial_attention_mask: torch.Tensor) -> torch.Tensor:
        """Visual tokens of the refinement pass: the SeR-Connector on multi-layer patches + initial caption."""
        caption_embeds = self.language_model.get_input_embeddings()(initial_ids)
        ser = self.ser_connector([features[layer] for layer in self.config.ser_feature_layers],
                                 caption_embeds, initial_attention_mask)
        if self.config.ser_residual:
            ser = ser + self.initial_visual_tokens(features)
        return ser

    def visual_tokens(self, features: dict[int, torch.Tensor], initial_ids: torch.Tensor | None = None,
                      initial_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Initial-pass tokens, or refinement-pass tokens when ``initial_ids`` is given."""
        if initial_ids is None:
            return self.initial_visual_tokens(features)
        if initial_attention_mask is None:
            initial_attention_mask = torch.ones_like(initial_ids)
        return self.refine_visual_tokens(features, initial_ids, initial_attention_mask)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        initial_ids: torch.Tensor | None = None,
        initial_attention_mask: torch.Tensor | None = None,
        features: dict[int, torch.Tensor] | None = None,
        **kwargs,
    ) -> MMSeROutput:
        """One pass with teacher forcing: the refinement pass when ``initial_ids`` is given, else the initial one.

        ``input_ids`` / ``attention_mask`` / ``labels`` cover the text after the visual tokens (prompt and
        caption, right-padded; labels ``-100`` where no loss is taken). ``features`` (from
        :meth:`encode_images`) may replace ``pixel_values`` to share one vision pass between both passes.
        """
        if features is None:
            if pixel_values is None:
                raise ValueError("give pixel_values or features")
            features = self.encode_images(pixel_values)
        visual = self.visual_tokens(features, initial_ids, initial_attention_mask)
        text_embeds = self.language_model.get_input_embeddings()(input_ids)
        embeds = torch.cat([visual.to(text_embeds.dtype), text_embeds], dim=1)
        n_vis = visual.shape[1]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = torch.cat([attention_mask.new_ones((attention_mask.shape[0], n_vis)), attention_mask], dim=1)
        full_labels = None
        if labels is not None:
            full_labels = torch.cat([labels.new_full((labels.shape[0], n_vis), IGNORE_INDEX), labels], dim=1)
        out = self.language_model(inputs_embeds=embeds, attention_mask=mask, labels=full_labels, use_cache=False)
        return MMSeROutput(loss=out.loss, logits=out.logits[:, n_vis:], visual_tokens=visual)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_ids(
        self,
        visual: torch.Tensor,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
    ) -> list[list[int]]:
        """Greedy (``num_beams=1``) or beam-search continuation of ``[visual tokens] + prompt`` per image.

        Prompts of different lengths are left-padded (masked), so a batch gives the same ids as one image at a
        time. Returns the new ids of each image, without the end-of-sequence token and what follows.
        """
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        embed = self.language_model.get_input_embeddings()
        n_vis = visual.shape[1]
        length = n_vis + max(len(p) for p in prompts)
        batch, dim = visual.shape[0], visual.shape[2]
        embeds = visual.new_zeros((batch, length, dim), dtype=embed.weight.dtype)
        mask = torch.zeros((batch, length), dtype=torch.long, device=visual.device)
        for i, prompt in enumerate(prompts):
            ids = torch.tensor(list(prompt), dtype=torch.long, device=visual.device)
            seq = torch.cat([visual[i].to(embeds.dtype), embed(ids)], dim=0)
            embeds[i, length - seq.shape[0]:] = seq
            mask[i, length - seq.shape[0]:] = 1
        out = self.language_model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens or self.config.max_caption_tokens,
            num_beams=num_beams, do_sample=False, eos_token_id=eos, pad_token_id=pad,
            early_stopping=num_beams > 1,
        )
        result = []
        for row in out.tolist():
            ids = []
            for t in row:
                if t == eos:
                    break
                ids.append(t)
            result.append(ids)
        return result


# Let AutoConfig / AutoModel / AutoTokenizer recognise saved MM-SeR folders.
AutoConfig.register(MMSeRConfig.model_type, MMSeRConfig, exist_ok=True)
AutoModel.register(MMSeRConfig, MMSeRForCaptioning, exist_ok=True)

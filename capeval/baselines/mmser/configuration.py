"""Configuration of MM-SeR (Song et al., "MM-SeR: Multimodal Self-Refinement for Lightweight Image Captioning").

Defaults describe the paper's model: a CLIP ViT-L/14-336 vision encoder (patch tokens of the penultimate layer),
a 4-layer GELU MLP connector into OPT-125M, and a SeR-Connector reading vision layers 13, 18 and 23. The vision
and text sub-configs can be any transformers vision encoder config (CLIP, SigLIP, ...) and any causal LM config.
"""

from __future__ import annotations

from typing import Any

from transformers import CONFIG_MAPPING, AutoConfig, CLIPVisionConfig, OPTConfig, PretrainedConfig

CLIP_L14_336 = {
    "model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
    "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14,
    "projection_dim": 768, "hidden_act": "quick_gelu",
}
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_REFINE_PROMPT = "initial caption : {caption} refined caption :"


def default_ser_layers(num_layers: int) -> list[int]:
    """The SeR-Connector's vision layers for an encoder of ``num_layers``: 13, 18, 23 of 24, scaled."""
    picks = {max(1, round(num_layers * 13 / 24)), max(1, round(num_layers * 18 / 24)), max(1, num_layers - 1)}
    return sorted(picks)


def _sub_config(value: Any, default_type: str, defaults: dict[str, Any]) -> PretrainedConfig:
    if isinstance(value, PretrainedConfig):
        return value
    if value is None:
        value = dict(defaults)
    if not isinstance(value, dict):
        raise TypeError(f"a sub-config must be a dict or a PretrainedConfig, got {type(value).__name__}")
    value = dict(value)
    model_type = value.pop("model_type", default_type)
    return CONFIG_MAPPING[model_type](**value)


class MMSeRConfig(PretrainedConfig):
    """MM-SeR: vision encoder + MLP connector + causal LM, and the SeR-Connector for the refinement pass.

    Args:
        vision_config: config of the vision encoder (default: CLIP ViT-L/14 at 336 px).
        text_config: config of the causal language model (default: OPT-125M).
        vision_feature_layer: hidden-state index whose patch tokens feed the connector (-2: penultimate layer).
        vision_num_prefix_tokens: leading non-patch tokens to drop (1 for CLIP's class token, 0 for SigLIP).
        connector_layers: linear layers of the MLP connector (GELU between them).
        ser_feature_layers: hidden-state indices of the vision features the SeR-Connector reads.
        ser_hidden_size / ser_num_layers / ser_num_heads: width, depth and heads of its Transformer blocks.
        ser_max_text_positions: longest initial caption (in tokens) the SeR-Connector reads.
        ser_residual: refinement visual tokens = connector tokens + SeR-Connector output (its last layer starts
            at zero, so stage 2 begins from the stage-1 visual tokens); False uses the SeR output alone.
        refine_prompt: text prompt of the refinement pass; ``{caption}`` is the initial caption.
        image_size / image_mean / image_std: preprocessing (resize shortest side, centre crop, normalise).
        max_caption_tokens: default length limit for generation.
        vision_name_or_path / text_name_or_path: where the component weights came from (for the record).
    """

    model_type = "mmser"
    sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | PretrainedConfig | None = None,
        text_config: dict | PretrainedConfig | None = None,
        vision_feature_layer: int = -2,
        vision_num_prefix_tokens: int = 1,
        connector_layers: int = 4,
        ser_feature_layers: tuple[int, ...] | list[int] = (13, 18, 23),
        ser_hidden_size: int = 768,
        ser_num_layers: int = 2,
        ser_num_heads: int = 12,
        ser_max_text_positions: int = 256,
        ser_residual: bool = True,
        refine_prompt: str = DEFAULT_REFINE_PROMPT,
        image_size: int | None = None,
        image_mean: tuple[float, ...] | list[float] = OPENAI_CLIP_MEAN,
        image_std: tuple[float, ...] | list[float] = OPENAI_CLIP_STD,
        max_caption_tokens: int = 64,
        vision_name_or_path: str = "openai/clip-vit-large-patch14-336",
        text_name_or_path: str = "facebook/opt-125m",
        **kwargs: Any,
    ) -> None:
        self.vision_config = _sub_config(vision_config, "clip_vision_model", CLIP_L14_336)
        self.text_config = _sub_config(text_config, "opt", OPTConfig().to_dict())
        self.vision_feature_layer = int(vision_feature_layer)
        self.vision_num_prefix_tokens = int(vision_num_prefix_tokens)
        self.connector_layers = int(connector_layers)
        self.ser_feature_layers = [int(x) for x in ser_feature_layers]
        self.ser_hidden_size = int(ser_hidden_size)
        self.ser_num_layers = int(ser_num_layers)
        self.ser_num_heads = int(ser_num_heads)
        self.ser_max_text_positions = int(ser_max_text_positions)
        self.ser_residual = bool(ser_residual)
        if "{caption}" not in refine_prompt:
            raise ValueError(f"refine_prompt must contain '{{caption}}', got {refine_prompt!r}")
        self.refine_prompt = refine_prompt
        self.image_size = int(image_size or getattr(self.vision_config, "image_size", 224))
        self.image_mean = [float(x) for x in image_mean]
        self.image_std = [float(x) for x in image_std]
        self.max_caption_tokens = int(max_caption_tokens)
        self.vision_name_or_path = vision_name_or_path
        self.text_name_or_path = text_name_or_path
        self._check_layers()
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    def _check_layers(self) -> None:
        n = getattr(self.vision_config, "num_hidden_layers", None)
        if n is None:
            return
        for layer in [self.vision_feature_layer, *self.ser_feature_layers]:
            if not -(n + 1) <= layer <= n:
                raise ValueError(f"vision layer {layer} does not exist: the encoder has hidden states 0..{n}")
        if self.ser_hidden_size % self.ser_num_heads:
            raise ValueError(f"ser_hidden_size {self.ser_hidden_size} is not divisible by "
                             f"ser_num_heads {self.ser_num_heads}")


def tiny_config(vocab_size: int, *, image_size: int = 64, patch_size: int = 16, vision_width: int = 96,
                vision_layers: int = 4, text_width: int = 128, text_layers: int = 3, ser_width: int = 96,
                ser_layers: int = 2, pad_token_id: int = 0, bos_token_id: int = 2, eos_token_id: int = 3,
                max_positions: int = 128) -> MMSeRConfig:
    """A small random-init configuration (a few million parameters) for the shapes dataset and for tests."""
    vision = CLIPVisionConfig(
        hidden_size=vision_width, intermediate_size=vision_width * 4, num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_width // 32), image_size=image_size, patch_size=patch_size,
        projection_dim=vision_width, hidden_act="gelu",
    )
    text = OPTConfig(
        vocab_size=vocab_size, hidden_size=text_width, ffn_dim=text_width * 4, num_hidden_layers=text_layers,
        num_attention_heads=max(1, text_width // 32), max_position_embeddings=max_positions,
        word_embed_proj_dim=text_width, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
        eos_token_id=eos_token_id, dropout=0.0, attention_dropout=0.0,
    )
    # Hidden states run 0..vision_layers; like 13/18/23 of CLIP-L's 24, read three layers up to the penultimate.
    ser = list(range(max(1, vision_layers - 3), vision_layers))
    return MMSeRConfig(
        vision_config=vision, text_config=text, ser_feature_layers=ser, ser_hidden_size=ser_width,
        ser_num_layers=ser_layers, ser_num_heads=max(1, ser_width // 32), ser_max_text_positions=max_positions,
        image_size=image_size, max_caption_tokens=40, vision_name_or_path="", text_name_or_path="",
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
    )

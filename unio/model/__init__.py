"""unio's model: config, encoder-decoder transformer, MoE layers, grammar-constrained decoding."""
from unio.model.config import UnioConfig
from unio.model.transformer import UnioModel, shift_right

__all__ = ["UnioConfig", "UnioModel", "shift_right"]

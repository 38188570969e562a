"""memlab's generation engine (static KV cache, CUDA-graph decode): see engine.py."""

from memlab.engine.decoder import UnsupportedModel
from memlab.engine.engine import Decoding, Engine, Output

__all__ = ["Decoding", "Engine", "Output", "UnsupportedModel"]

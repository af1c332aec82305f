"""lts: training-free, hardware-aware architecture search for Transformer language models."""

__version__ = "0.1.0"

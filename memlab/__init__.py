"""memlab: measure how much a language model memorizes its fine-tuning data.

Importing the package is cheap on purpose: the CLI, config and planning never import torch,
transformers, deepspeed or ray; heavy imports happen inside stage functions.
"""

__version__ = "0.1.0"

"""A prompt-learning peft model (prefix or prompt tuning), which cannot be merged into its
base model's weights, as memlab's passes and generation use a causal LM (imported only where
such a model is loaded: it imports torch)."""

from __future__ import annotations

import torch


class PromptLearned(torch.nn.Module):
    """A prompt-learning peft model (prefix or prompt tuning) as memlab's passes use a causal
    LM: `model(input_ids=, attention_mask=).logits` holds one row per input token (peft's
    prompt tuning also returns the virtual tokens' logits first: trimmed), `generate` is
    peft's, the output head and config are the base model's. `prompt_learning` tells the
    generation engine (its static cache and token ids cannot hold virtual tokens) to leave
    it to HF generate."""

    prompt_learning = True

    def __init__(self, peft_model):
        super().__init__()
        self.peft_model = peft_model
        self.config = peft_model.get_base_model().config

    def forward(self, input_ids=None, attention_mask=None, **kw):
        out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, **kw)
        extra = out.logits.shape[1] - input_ids.shape[1]
        if extra > 0:
            out.logits = out.logits[:, extra:]
        return out

    def generate(self, **kw):
        return self.peft_model.generate(**kw)

    def get_output_embeddings(self):
        return self.peft_model.get_base_model().get_output_embeddings()

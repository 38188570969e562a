"""Teacher-forced passes: a model's forward over given token lists, no generation and no
gradient, reduced on its device. The generate stage scores each document with them (its mean
NLL and per-token statistics for membership inference; the population split's NLL and ReCaLL's
prefixed NLL), the base stage with the base model (and its token frequencies for DC-PDD), and
canary exposure with the fine-tuned one."""

from __future__ import annotations

from memlab.components.models import pad

LOGIT_ELEMS = 1 << 27
"""Logits (rows x tokens x vocabulary) one teacher-forced forward may hold: a batch of long
documents is split into forwards of fewer rows (a 512 x 512-token batch of a 49k-vocabulary
model would otherwise need ~50 GB of float32 logits)."""


def _forwards(model, tok, token_lists: list[list[int]], batch_size: int):
    """(float32 logits of every position but the last, token ids, attention mask) of each
    right-padded forward over `token_lists`, in order, each within LOGIT_ELEMS."""
    import torch

    dev = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    width = max(map(len, token_lists), default=1)
    rows = max(1, min(batch_size, LOGIT_ELEMS // (width * vocab)))
    for i in range(0, len(token_lists), rows):
        batch = pad(tok, token_lists[i:i + rows], "right")
        ids, mask = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        with torch.no_grad():
            yield model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), ids, mask


def doc_stats(model, tok, token_lists: list[list[int]],
              batch_size: int) -> list[tuple[list[float], list[float]]]:
    """Of each token list, teacher-forced (no grad): log p of each of its tokens after the
    first, and min-k%++'s normalised score of each (memlab.engine.engine.token_stats)."""
    from memlab.engine.engine import token_stats

    out = []
    lengths = iter(map(len, token_lists))
    for logits, ids, _ in _forwards(model, tok, token_lists, batch_size):
        lp, z = token_stats(logits, ids[:, 1:])
        for a, b in zip(lp.tolist(), z.tolist()):
            n = next(lengths) - 1
            out.append((a[:n], b[:n]))
    return out


def nll_sums(model, tok, token_lists: list[list[int]], batch_size: int,
             skip: int = 0) -> list[float]:
    """Of each token list, teacher-forced (no grad): the summed NLL of its tokens after the
    first `skip` + 1 (reduced on the device: no per-token numbers leave it). `skip`: the
    length of a context every list starts with (ReCaLL's prefix), read but not scored."""
    import torch

    from memlab.engine.engine import next_token_nll

    out: list[float] = []
    for logits, ids, mask in _forwards(model, tok, token_lists, batch_size):
        keep = mask[:, 1:] * (torch.arange(ids.shape[1] - 1, device=ids.device) >= skip)
        out += (next_token_nll(logits, ids[:, 1:]) * keep).sum(1).tolist()
    return out


def mean_next_token(model, tok, token_lists: list[list[int]], batch_size: int):
    """The model's next-token distributions summed over every predicted position of the
    token lists (float64, one entry per row of the output embedding), and the number of
    positions: their mean is the model's view of how often each token occurs in such text
    (DC-PDD's frequencies from the base model's side, memlab/scoring/calibrated.py)."""
    import torch

    total, positions = None, 0
    for logits, _, mask in _forwards(model, tok, token_lists, batch_size):
        keep = mask[:, 1:].bool()
        probs = torch.softmax(logits[keep], dim=-1).sum(0, dtype=torch.float64)  # (no copy)
        total = probs if total is None else total + probs
        positions += int(keep.sum())
    if total is None:
        total = torch.zeros(model.get_output_embeddings().weight.shape[0], dtype=torch.float64)
    return total.cpu().numpy(), positions

"""One optimizer step as one CUDA graph (train.cuda_graphs; plain torch on a GPU, no DP).

A 135M model's step at the GPU study's shape (32 sequences x 128 tokens) launches a few
thousand small kernels; eager, the host's launch cost, not the GPU, sets its rate (27.5k
tokens/s on an H100, against 297k at 64 x 512). Captured once and replayed, the whole step
(forward and backward of every micro-batch, gradient clipping, the fused AdamW update) costs
one launch. What a graph needs, and what this file does for it:
- static shapes: every micro-batch is copied into fixed buffers of (rows, train.seq_len); rows
  and tokens beyond the batch's carry label -100 (no loss);
- no attention mask: batches are right-padded (memlab/stages/train.py `_right_pad`), so under
  the causal mask no real token sees a padding token, and positions count from 0 either way:
  every real token's output is the one the masked model gives (SDPA runs its causal kernel);
- no host syncs: the step's loss tokens are counted on the device, each micro-batch's loss is
  its token sum over that count (HF's loss with `num_items_in_batch`: the same mean over the
  step's tokens as the eager step's weighted micro-batch means), a step whose loss counts x 0
  (`empty`) is scaled by a device scalar; the learning rate is a device tensor the schedule
  fills (AdamW `capturable`); clipping runs foreach, without a check that reads the norm;
- autocast without its weight cache (a cached cast would outlive the capture).
The first WARMUP steps run the same step eagerly on a side stream (lazy optimizer state,
autograd's streams), then the graph is captured and replayed for every later step. A model
whose step cannot be captured trains eagerly on (one warning; the manifest's engine says
`torch`, not `torch+graph`), and so do peft's prompt learning and a train.seq_len beyond the
model's positions (`graphable`)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

WARMUP = 2  # eager steps before the capture (PyTorch's whole-network capture recipe: >= 1)


class GraphedStep:
    """The step of a `TorchSetup` (memlab/components/training.py): `setup.forward`,
    `.params`, `.optim`, `.device`, `.dtype`; `parts` micro-batches of at most `rows`
    sequences of at most `seq_len` tokens. `capture=False` runs the same step eagerly every
    time (the math without the graph: how it is tested on a CPU)."""

    def __init__(self, setup, parts: int, rows: int, seq_len: int, capture: bool = True):
        import torch

        self.setup, self.capture, self.calls = setup, capture, 0
        dev = setup.device
        self.ids = torch.zeros((parts, rows, seq_len), dtype=torch.long, device=dev)
        self.labels = torch.full_like(self.ids, -100)
        self.scale = torch.ones((), device=dev)  # 0: the step's loss counts x 0
        self.graph, self.out, self.failed = None, None, False

    def __call__(self, parts: list[tuple], empty: bool):
        """One optimizer step over `parts` ((ids, mask, labels, weight) as `micro_parts` cuts
        them, on the device); returns the step's loss (device tensor, the micro-batches'
        losses summed: the step's mean over its loss tokens)."""
        self._feed(parts, empty)
        if not self.capture or self.failed:
            return self._eager()
        if self.graph is None and self.calls < WARMUP:
            self.calls += 1
            return self._on_side_stream()
        if self.graph is None and not self._captured():
            return self._eager()
        self.graph.replay()
        return self.out.clone()  # (the next replay overwrites out)

    def _feed(self, parts: list[tuple], empty: bool) -> None:
        """The step's micro-batches into the static buffers: a part without loss tokens (or a
        filler repeating row 0, weight 0) is left out, its labels all -100."""
        self.labels.fill_(-100)
        for p, (ids, _mask, labels, w) in enumerate(parts):
            if w > 0 or empty:
                r, n = ids.shape
                self.ids[p, :r, :n].copy_(ids, non_blocking=True)
                self.labels[p, :r, :n].copy_(labels, non_blocking=True)
        self.scale.fill_(0.0 if empty else 1.0)

    def _body(self):
        import torch

        s = self.setup
        count = (self.labels[..., 1:] != -100).sum().clamp(min=1)  # the step's loss tokens
        total = torch.zeros((), device=s.device)
        for p in range(self.ids.shape[0]):
            with torch.autocast(s.device, dtype=s.dtype, enabled=s.dtype != torch.float32,
                                cache_enabled=False):
                loss = s.forward(input_ids=self.ids[p], labels=self.labels[p],
                                 num_items_in_batch=count).loss
            (loss * self.scale).backward()
            total = total + loss.detach()
        torch.nn.utils.clip_grad_norm_(s.params, 1.0, foreach=True)
        s.optim.step()
        return total

    def _eager(self):
        out = self._body()
        self.setup.optim.zero_grad(set_to_none=True)
        return out

    def _on_side_stream(self):
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self._eager()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _captured(self) -> bool:
        """Capture the step (nothing runs: the replay that follows runs it); False, with one
        warning, where the model's step cannot be captured (it then trains eagerly)."""
        import torch

        self.setup.optim.zero_grad(set_to_none=True)  # (the backward in the graph makes them)
        graph, stream = torch.cuda.CUDAGraph(), torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                self.out = self._body()
        except Exception as e:  # (a model with a host sync or a dynamic shape in its step)
            torch.cuda.set_stream(stream)  # (a failed capture_end leaves its stream current)
            torch.cuda.synchronize()
            self.setup.optim.zero_grad(set_to_none=True)
            self.failed = True
            log.warning("train: its step could not be captured as a CUDA graph (%s: %s); it "
                        "trains eagerly", type(e).__name__, str(e).splitlines()[0][:200])
            return False
        self.graph = graph
        self.setup.engine += "+graph"  # (the manifest's engine: only once captured)
        return True


def graphable(model, seq_len: int) -> bool:
    """Whether a model's step may be captured: not peft's prompt learning (prefix, prompt
    tuning: their forwards copy host tensors to the GPU every step, which a capture refuses),
    and train.seq_len within the model's positions (every step runs all seq_len positions: a
    learned position table shorter than that would be indexed past its end; eager steps only
    run as far as the batch's longest sequence). Where not, one line says why."""
    peft = getattr(model, "peft_config", None) or {}
    if any(getattr(c, "is_prompt_learning", False) for c in peft.values()):
        log.info("train: prompt learning steps eagerly (train.cuda_graphs: its forward copies "
                 "host tensors every step)")
        return False
    conf = getattr(model, "config", None)
    positions = getattr(conf, "max_position_embeddings", None) or getattr(
        conf, "n_positions", None)
    if positions is not None and seq_len > positions:
        log.warning("train: train.seq_len=%d is beyond the model's %d positions: its steps run "
                    "eagerly, not as CUDA graphs (padded to seq_len)", seq_len, positions)
        return False
    return True


def tensor_lr(optim, device: str) -> None:
    """The learning rate of every parameter group as a device tensor (what a captured AdamW
    step reads, and the schedule fills), also after a checkpoint put a number back."""
    import torch

    for group in optim.param_groups:
        lr = group["lr"]
        if not torch.is_tensor(lr) or lr.device.type != torch.device(device).type:
            group["lr"] = torch.tensor(float(lr), device=device)

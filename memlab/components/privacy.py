"""DP fine-tuning (train.dp): DP-SGD (Abadi et al. 2016) through Opacus's PrivacyEngine over
the plain-torch setup's model and optimizer (`TorchSetup`, memlab/components/training.py), for
every strategy that trains in the trial process (head, LoRA and the other peft methods, full
fine-tuning with train.full.engine=torch).

- Per-sample gradients: Opacus's GradSampleModule in DP_GRAD_SAMPLE_MODE (memlab/config/
  schema.py says why "hooks"). Two things of the models matter, and neither is refused: a tied
  input embedding and head (SmolLM2, the tiny models; full fine-tuning trains it) is one
  parameter used twice, whose per-sample gradients Opacus adds up over both uses; GPT-2 looks
  its learned position embedding up with one row of positions broadcast over the batch, which
  gives that embedding one gradient for the whole batch and none per sequence, so under DP the
  positions are passed per row (the same numbers). Head-only training unties the head first
  (memlab/strategies/head.py) and so never meets the tie. A trainable layer left without
  per-sample gradients stops the first step with its name.
- The loss: each sequence's mean over its own loss tokens (loss_on=response included), averaged
  over the step's sequences; the optimizer sums the clipped per-sample gradients, adds Gaussian
  noise of std noise_multiplier x max_grad_norm and divides by the expected batch size
  (Opacus's loss_reduction="mean"). Training without DP weighs every token of the batch alike,
  which makes one sequence's gradient depend on the other sequences' lengths: DP's bound on
  what one sequence changes would not hold. The loss curve is the batch's token mean, as
  without DP.
- Poisson sampling (Opacus's DPDataLoader): each step takes each sequence of the training
  stream independently with probability `sample_rate` (memlab/config/privacy.py: 1 / the steps
  of an epoch, so in expectation a sequence is trained on once per epoch as without DP), for
  the same number of steps as without DP. The batches differ from memlab's fixed walk through
  the shuffled stream: their size varies around train.batch_size (an empty draw is a step of
  noise alone), a sequence may come twice in an epoch or not at all. train.micro_batch still
  splits a step: its passes' clipped gradients add up, and the noise is added once (Opacus's
  skipped steps, as its BatchMemoryManager does).
- Noise: Opacus's `get_noise_multiplier` for the target epsilon at delta, over the trial's
  sampling rate and steps, with DP_ACCOUNTANT; the accountant PrivacyEngine attaches to the
  optimizer counts each step, and its epsilon after training is `dp_epsilon_spent` (<= the
  target; a resumed training counts the steps before its checkpoint again, all alike).
"""

from __future__ import annotations

import functools
from pathlib import Path

from memlab.components.training import _part_loss
from memlab.config.privacy import sample_rate
from memlab.config.schema import DP_ACCOUNTANT, DP_GRAD_SAMPLE_MODE, DPSection, StudyConfig

FIGURES = ("dp_epsilon_spent", "dp_epsilon_target", "dp_delta", "dp_noise_multiplier",
           "dp_sample_rate", "dp_max_grad_norm")  # what a DP training adds to its metrics


def noise_multiplier(dp: DPSection, rate: float, steps: int) -> float:
    """The noise multiplier Opacus's accountant gives for the target (epsilon, delta) after
    `steps` steps at sampling rate `rate`."""
    try:
        return _noise(dp.epsilon, dp.delta, rate, steps)
    except ValueError as e:
        raise ValueError(f"train.dp.epsilon={dp.epsilon:g}: no noise reaches it over {steps} "
                         f"steps at sampling rate {rate:.3g} (Opacus: {e})") from e


@functools.lru_cache(maxsize=16)  # (a few seconds each: once per setting in a process)
def _noise(epsilon: float, delta: float, rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    return get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=rate,
                                steps=steps, accountant=DP_ACCOUNTANT)


@functools.lru_cache(maxsize=4)
def poisson_batches(stream: int, batch_size: int, seed: int, steps: int
                    ) -> tuple[tuple[int, ...], ...]:
    """Every step's sequences (indices into the training stream), drawn as Opacus's
    DPDataLoader draws them (its UniformWithReplacementSampler: each sequence independently
    with probability `sample_rate(stream, batch_size)`), from a generator of their own seeded
    by the trial's seed: a trial draws the same batches every time, a resumed one included,
    whatever else draws random numbers (dropout, LoRA's initialisation, the noise)."""
    import torch
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    sampler = UniformWithReplacementSampler(
        num_samples=stream, sample_rate=sample_rate(stream, batch_size),
        generator=torch.Generator().manual_seed(seed), steps=steps)
    return tuple(tuple(batch) for batch in sampler)


def sequence_losses(logits, labels):
    """(each sequence's mean loss over its own loss tokens, 0 without any; the batch's mean
    token loss, NaN without any)."""
    import torch

    lg, lb = logits[:, :-1].float(), labels[:, 1:]
    tok = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), lb.reshape(-1),
                                            ignore_index=-100, reduction="none").view(lb.shape)
    count = (lb != -100).sum(1)
    return tok.sum(1) / count.clamp(min=1), tok.sum() / count.sum()


class PrivateSetup:
    """A `TorchSetup` made private by Opacus (the module's doc says how): its model wrapped
    for per-sample gradients, its optimizer clipping them per sequence and adding noise once
    per step, an accountant counting the steps. Checkpoints and export are the plain setup's
    (the accountant's history is its steps: all alike, so a resumed training restores it from
    the step it continues at)."""

    rank, world = 0, 1

    def __init__(self, inner, cfg: StudyConfig, stream: int, steps: int):
        import torch
        from opacus import PrivacyEngine

        dp, t = cfg.train.dp, cfg.train
        self.inner, self.dp, self.steps = inner, dp, steps
        self.module, self.trainable, self.total = inner.module, inner.trainable, inner.total
        self.lr, self.device, self.dtype = inner.lr, inner.device, inner.dtype
        self.notes, self.record, self.saved = inner.notes, inner.record, inner.saved
        self.engine = f"{inner.engine}+opacus"
        self.rate = sample_rate(stream, t.batch_size)
        self.noise = noise_multiplier(dp, self.rate, steps)
        self.privacy = PrivacyEngine(accountant=DP_ACCOUNTANT)  # (its seeded noise: noise.py)
        # the loader only tells PrivacyEngine the stream and batch size (its sampling rate);
        # the batches are `poisson_batches`, drawn by the same sampler
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.arange(stream)), batch_size=t.batch_size)
        inner.model.train()  # (Opacus wraps a model in training mode)
        self.model, self.optim, sampled = self.privacy.make_private(
            module=inner.model, optimizer=inner.optim, data_loader=loader,
            noise_multiplier=self.noise, max_grad_norm=dp.max_grad_norm, poisson_sampling=True,
            grad_sample_mode=DP_GRAD_SAMPLE_MODE, loss_reduction="mean")
        if sampled.sample_rate != self.rate:  # (one formula: memlab/config/privacy.py)
            raise RuntimeError(f"Opacus samples at {sampled.sample_rate}, memlab at {self.rate}")
        peft = getattr(inner.model, "active_peft_config", None)
        # peft's prompt learning (prefix, prompt tuning) puts virtual tokens before the
        # positions and drops position ids; its trainable prompt reads none
        self.per_row = not getattr(peft, "is_prompt_learning", False)
        self.checked = False

    def _forward(self, ids, mask):
        import torch

        pos = {"position_ids": torch.arange(ids.shape[1], device=ids.device).expand_as(ids)} \
            if self.per_row else {}
        with torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.model(input_ids=ids, attention_mask=mask, **pos).logits

    def step(self, parts: list[tuple], empty: bool):
        """One DP step over the passes of the step's Poisson batch: each pass's per-sample
        gradients clipped and summed, then the noise and the optimizer step; the step's loss
        (the batch's token mean) as a device tensor."""
        total = 0.0
        for i, (ids, mask, labels, w) in enumerate(parts):
            per_seq, mean = sequence_losses(self._forward(ids, mask), labels)
            # x 0: a step without sequences (a row stands in) or without loss tokens
            (per_seq.mean() * (0.0 if empty or not w else 1.0)).backward()
            self._check(ids.shape[0])
            last = i == len(parts) - 1
            if not last:
                self.optim.signal_skip_step(True)  # clip and add up; the noise comes once
            self.optim.step()
            if not last:
                self.optim.zero_grad(set_to_none=True)  # (the summed clipped gradients stay)
            total = total + _part_loss(mean, w, empty, len(parts))
        self.inner.sched.step()
        self.optim.zero_grad(set_to_none=True)
        return total

    def _check(self, rows: int) -> None:
        """After the first backward pass: every trainable parameter has a gradient per
        sequence (a layer applied to the batch as a whole would have one for all)."""
        if self.checked:
            return
        self.checked = True
        bad = [n for n, p in self.inner.model.named_parameters() if p.requires_grad and (
            getattr(p, "grad_sample", None) is None or not hasattr(p.grad_sample, "shape")
            or p.grad_sample.shape[0] != rows)]
        if bad:
            raise ValueError(f"train.dp: Opacus computed no per-sample gradient of "
                             f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} (a layer "
                             "that sees the batch as a whole): DP cannot train it")

    def figures(self) -> dict:
        """What DP adds to the training's metrics: the epsilon the accountant counts at delta
        after the steps taken, the target, and how it was reached."""
        return {"dp_epsilon_spent": self.privacy.get_epsilon(self.dp.delta),
                "dp_epsilon_target": self.dp.epsilon, "dp_delta": self.dp.delta,
                "dp_noise_multiplier": self.noise, "dp_sample_rate": self.rate,
                "dp_max_grad_norm": self.dp.max_grad_norm}

    def save_ckpt(self, ckpt: Path, step: int, losses: list[float]) -> None:
        self.inner.save_ckpt(ckpt, step, losses)

    def load_ckpt(self, ckpt: Path) -> tuple[int, list[float]]:
        first, losses = self.inner.load_ckpt(ckpt)
        if first:  # the steps before the checkpoint, counted as the accountant counts them
            self.privacy.accountant.history = [(self.noise, self.rate, first)]
        return first, losses

    def export(self, model_dir: Path) -> None:
        self.inner.export(model_dir)

    def sync(self) -> None:
        pass

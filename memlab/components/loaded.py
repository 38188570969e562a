"""A model loaded for the shard stages (generate, base): on this process's device, with its
tokenizer, the generation engine over it where it runs (memlab/engine: on a GPU unless
attack.engine says otherwise) and the locks of the threads that share them. A cold actor loads
one (the trial's trained model, or the base model); a warm actor keeps one base model and
copies each trial's weights into it (memlab/stages/warm.py)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from memlab.config.schema import StudyConfig

log = logging.getLogger(__name__)


class LoadedModel:
    """`model` and `tok` on this process's device in the trial's precision; `engine`: the
    generation engine over the model (None: HF generate); `used`: what generates, as every
    shard it writes records it; `model_lock` (a TimedLock) around the device work and
    `tok_lock` around the tokenizer, when threads share them."""

    def __init__(self, cfg: StudyConfig, threads: int, load, what: str):
        """`load(dtype)` -> (model, tokenizer), called once the device and dtype are known."""
        t0 = time.perf_counter()
        fit_threads(cfg.attack.actor_cpus)
        import torch

        from memlab.components.models import torch_dtype

        torch.set_num_threads(max(1, threads))
        self.cfg = cfg
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = torch_dtype(cfg.train.precision, self.device)
        self.model, self.tok = load(self.dtype)
        self.model.to(self.device)
        self.engine = None
        if use_engine(cfg, self.device) and not getattr(self.model, "prompt_learning", False):
            from memlab.engine import Engine

            self.engine = Engine(self.model, max_batch=cfg.attack.batch_size,
                                 exact=cfg.attack.engine == "memlab-exact",
                                 eos_token_id=self.tok.eos_token_id,
                                 pad_token_id=self.tok.pad_token_id)
        e = self.engine
        self.used = ("hf" if e is None else "memlab-exact" if e.dec.exact else
                     f"memlab ({e.decode_kernel} decode{', compiled' if e.compile else ''})") + \
            f" on {self.device}, {str(self.dtype).removeprefix('torch.')}"
        self.model_lock, self.tok_lock = TimedLock(), threading.Lock()
        log.info(f"model ready in {time.perf_counter() - t0:.1f} s (imports, {what}; "
                 f"{self.used})")

    @classmethod
    def trained(cls, cfg: StudyConfig, train_dir: str, threads: int) -> LoadedModel:
        """The trained model of a train stage (a LoRA adapter merged into its base)."""
        from memlab.components.models import load_trained

        return cls(cfg, threads, lambda dtype: load_trained(train_dir, dtype), "model load")

    @classmethod
    def base(cls, cfg: StudyConfig, base_model: str, threads: int) -> LoadedModel:
        """The base model, in eval mode."""
        from memlab.components.models import load_causal_lm, load_tokenizer

        return cls(cfg, threads, lambda dtype: (load_causal_lm(base_model, dtype).eval(),
                                                load_tokenizer(base_model)), "base model load")


def use_engine(cfg: StudyConfig, device: str) -> bool:
    """memlab's engine on GPU, HF `generate` on CPU, unless attack.engine says otherwise."""
    return cfg.attack.engine in ("memlab", "memlab-exact") or \
        (cfg.attack.engine == "auto" and device == "cuda")


def fit_threads(cpus: float) -> None:
    """Keep an actor's compile processes within the CPUs Ray reserved for it.

    Left alone, inductor starts a compile pool of one process per core of the node (each
    importing torch and triton) in every actor: two generation actors on a 16-core GPU node
    start 34 processes while they warm up. A setting already in the environment wins. (The
    Rust tokenizer's threads are left alone: capped at 4 per actor, the generation stage's
    steady throughput fell from 0.97 to 0.92 of the bare engine's, bench/results.)"""
    if "TORCHINDUCTOR_COMPILE_THREADS" not in os.environ:
        n = max(1, int(cpus))
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(n)
        if (ic := sys.modules.get("torch._inductor.config")) is not None:
            ic.compile_threads = n  # read from the environment when first imported


class TimedLock:
    """A lock that records, per thread, how long its holder waited for it and held it."""

    def __init__(self):
        self._lock, self._mine = threading.Lock(), threading.local()

    def __enter__(self):
        t = time.perf_counter()
        self._lock.acquire()
        self._mine.t = time.perf_counter()
        self._mine.wait = self._mine.t - t
        return self

    def __exit__(self, *exc):
        self._mine.held = time.perf_counter() - self._mine.t
        self._lock.release()

    @property
    def last(self) -> tuple[float, float]:
        """(waited, held) seconds of this thread's last hold."""
        return getattr(self._mine, "wait", 0.0), getattr(self._mine, "held", 0.0)

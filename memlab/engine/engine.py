"""Batched generation with a static KV cache and one decode step replayed as a CUDA graph.

For each batch of prompts (sorted by length, left-padded to the longest, rounded up to a
multiple of `bucket`):
1. prefill: one forward over the prompts (and, optionally, each document's remaining tokens,
   teacher-forced, so the same pass gives the document's NLL at no extra cost) writes K/V into
   a cache preallocated for (batch, width + max(new tokens, tail));
2. decode: one step (embed the last token, attend the whole cache under a mask built from the
   step counter, sample, append) runs with every shape fixed. On CUDA it is captured once per
   (batch, cache length, decoding) and replayed: the host does one `replay()` per token, the
   step counters live on the device, and all-finished is checked every `check_every` steps.

Sampling is greedy, or temperature / top-k / top-p with the Gumbel-max trick over a
counter-based hash of (row seed, step, token id): every row has its own recorded seed, the draw
does not depend on batch composition or device, and it needs no generator state in the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from memlab.engine.decoder import Decoder

M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Decoding:
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"bad decoding settings: {self}")


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash on int64 tensors holding values in [0, 2**32) (no overflow)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & M32
    return x ^ (x >> 16)


def row_keys(seeds: list[int], device) -> torch.Tensor:
    s = torch.tensor([int(x) % (1 << 63) for x in seeds], dtype=torch.long, device=device)
    return mix32(mix32(s & M32) ^ ((s >> 32) & M32))


def uniforms(keys: torch.Tensor, step: torch.Tensor, tok_hash: torch.Tensor) -> torch.Tensor:
    """U(0,1) for each (row, candidate): keys (B,), step (1,), tok_hash (B,K) -> (B,K) float32."""
    r = mix32(keys ^ ((step * 0x9E3779B9) & M32))
    h = mix32(r[:, None] ^ tok_hash)
    return ((h >> 8).float() + 0.5) * (1.0 / (1 << 24))


def choose(logits: torch.Tensor, dec: Decoding, keys, step, vocab_hash) -> torch.Tensor:
    """Next token per row from float32 logits (B, V)."""
    if dec.greedy:
        return logits.argmax(-1)
    logits = logits / dec.temperature
    if dec.top_k or dec.top_p < 1:
        k = min(dec.top_k or logits.shape[-1], logits.shape[-1])
        vals, idx = logits.topk(k, dim=-1)  # sorted, largest first
        if dec.top_p < 1:
            probs = torch.softmax(vals, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly better tokens
            vals = vals.masked_fill(before >= dec.top_p, float("-inf"))
    else:
        vals = logits
        idx = torch.arange(logits.shape[-1], device=logits.device).expand_as(logits)
    g = -torch.log(-torch.log(uniforms(keys, step, vocab_hash[idx])))
    pick = (vals + g).argmax(-1, keepdim=True)
    return idx.gather(-1, pick).squeeze(-1)


@dataclass
class Output:
    tokens: list[list[int]]  # generated ids per request, cut before the first EOS
    nll: list[float] | None  # mean next-token NLL over prompt+tail, when tails were given
    # per request, over the same tokens: log p(token) and min-k%++'s normalised score
    # (`token_stats`), when tails were given
    token_logp: list[list[float]] | None = None
    token_z: list[list[float]] | None = None


def _live(ar, slot, pad):
    """Bool mask (B, 1, 1, 1, len(ar)): the cache columns each row's new token attends."""
    return ((ar <= slot) & (ar >= pad[:, None]))[:, None, None, None, :]


def _decode_pre(dec, tok, slot, pad, ar, live: bool = False):
    """Embedding, attention bias and RoPE for one decode step (last token at cache `slot`).
    live: attention by the live-span kernel, which takes (pad, slot) instead of a bias."""
    pos = (slot - pad).clamp(min=0)[:, None]
    if live:
        x, r, _, rope = dec.embed_in(tok[:, None], pos, None, ar.shape[0])
        return x, r, (pad, slot), rope
    return dec.embed_in(tok[:, None], pos, _live(ar, slot, pad), ar.shape[0])


def _decode_pre_exact(dec, tok, slot, pad, ar, key_len: int, padded: bool):
    """Exact mode's `_decode_pre`: attention over exactly `key_len` keys, HF's mask form (none
    when no row is padded)."""
    pos = (slot - pad).clamp(min=0)[:, None]
    mask = _live(ar[:key_len], slot, pad) if padded else None
    return dec.embed_in(tok[:, None], pos, mask, ar.shape[0], key_len=key_len)


def _decode_post(dec, x, r, dec_cfg, keys, step, vocab_hash, fill, eos, tok, slot, done, out):
    """Last norm, logits, next token; the step's buffers updated in place."""
    nxt = choose(dec.logits(dec.final(x, r)[:, -1]), dec_cfg, keys, step, vocab_hash)
    nxt = torch.where(done, fill, nxt)
    out.index_copy_(1, step, nxt[:, None])
    if eos >= 0:
        done |= nxt == eos
    tok.copy_(nxt)
    slot += 1
    step += 1


class _Batch:
    """Static buffers (and, on CUDA, the captured step) for one (batch, cache length, decoding)."""

    def __init__(self, eng: Engine, b: int, length: int, new: int, dec: Decoding):
        d = eng.dec
        dev = d.device
        self.eng, self.b, self.length, self.new, self.decoding = eng, b, length, new, dec
        self.cache = d.new_cache(b, length)
        z = lambda *s: torch.zeros(*s, dtype=torch.long, device=dev)  # noqa: E731
        self.tok, self.pad, self.keys, self.out = z(b), z(b), z(b), z(b, new)
        self.slot, self.step = z(1), z(1)
        self.done = torch.zeros(b, dtype=torch.bool, device=dev)
        self.ar = torch.arange(length, device=dev)
        self.graph = None
        self.graphs: dict[tuple[int, bool], torch.cuda.CUDAGraph] = {}  # exact mode: per key length
        self.at, self.padded = 0, False  # exact mode: host copies of slot and "any row padded"
        if d.shape.family == "llama":
            d.rope_table(length)
        if eng.use_graphs and new > 1 and not d.exact:
            self._capture()

    def _step(self):
        """One decode step on the static buffers (all updates in place)."""
        e = self.eng
        d = e.dec
        if d.exact:
            x, r, bias, rope = _decode_pre_exact(d, self.tok, self.slot, self.pad, self.ar,
                                                 self.at + 1, self.padded)
        else:
            x, r, bias, rope = e.f_pre(d, self.tok, self.slot, self.pad, self.ar,
                                       e.decode_kernel == "triton")
        for w, (kc, vc) in zip(d.layers, self.cache):
            x, r = e.f_layer(x, r, w, kc, vc, self.slot, bias, rope, d.spec, d.act)
        e.f_post(d, x, r, self.decoding, self.keys, self.step, e.vocab_hash, e.fill, e.eos,
                 self.tok, self.slot, self.done, self.out)

    def step_once(self):
        self._step()

    def _capture(self):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up (kernels, workspaces) outside the graph
                self.slot.zero_()
                self.step.zero_()
                self.step_once()
        torch.cuda.current_stream().wait_stream(side)
        self.slot.zero_()
        self.step.zero_()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=self.eng.pool):
            self.step_once()

    def _exact_step(self):
        """Exact mode: the step's shapes depend on the key length, so one graph per length,
        captured the first time that length runs (after an eager step, which is its warm-up)."""
        key = (self.at, self.padded)
        g = self.graphs.get(key)
        if g is not None:
            g.replay()
        else:
            self.step_once()
            if self.eng.use_graphs:  # capture records the step for this length; runs nothing
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=self.eng.pool):
                    self.step_once()
                self.graphs[key] = g
        self.at += 1

    def run(self, steps: int):
        check = self.eng.check_every
        for i in range(steps):
            if self.eng.dec.exact:
                self._exact_step()
            elif self.graph is not None:
                self.graph.replay()
            else:
                self.step_once()
            if (i + 1) % check == 0 and self.eng.eos >= 0 and bool(self.done.all()):
                break


class Engine:
    """Generation engine over a HF causal LM (Llama family or GPT-2; LoRA merged beforehand).

    fuse: one matmul for q/k/v and one for gate/up (Llama family). exact_casts: the compiled
    step rounds to the model dtype where eager PyTorch does. exact: HF's own kernels with HF's
    shapes (bit-identical to HF `generate` greedy, also in bf16; no compile, no fusion, one
    CUDA graph per decode length; slower than the default, still far faster than HF).
    decode_kernel: the decode step's attention: "triton" (memlab/engine/attention.py: reads
    only each row's live cache columns), "sdpa" (SDPA under a mask over the whole cache);
    None: triton on CUDA when the package is there, else sdpa. sdpa: SDPBackend names attention
    may use, e.g. ("EFFICIENT_ATTENTION", "MATH"); None lets PyTorch choose (with torch 2.11 on
    an H200 it picks cuDNN for the decode step's masked attention: 59% of a SmolLM2 batch-512
    step's kernel time, bench/results/generate_profile.json).
    """

    def __init__(self, model, *, max_batch: int = 256, bucket: int = 1,
                 use_graphs: bool | None = None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, check_every: int = 16, keep: int = 2,
                 compile: bool | None = None, fuse: bool = True, exact_casts: bool = True,
                 sdpa: tuple[str, ...] | None = None, exact: bool = False,
                 decode_kernel: str | None = None):
        with torch.no_grad():
            self.dec = Decoder(model.eval(), fuse=fuse, sdpa=sdpa, exact=exact)
        dev = self.dec.device
        from memlab.engine import attention

        head_dim = self.dec.shape.head_dim
        if decode_kernel is None:
            decode_kernel = "triton" if dev.type == "cuda" and not exact and not sdpa \
                and attention.available(head_dim) else "sdpa"
        if decode_kernel not in ("triton", "sdpa") or (exact and decode_kernel == "triton"):
            raise ValueError(f"decode_kernel={decode_kernel!r}: 'triton' or 'sdpa' "
                             "(exact mode: sdpa, HF's own call)")
        if decode_kernel == "triton" and not attention.supports(head_dim):
            raise ValueError(f"decode_kernel='triton' needs a head_dim that is a power of two "
                             f"in [16, 256], not {head_dim}: use 'sdpa'")
        self.decode_kernel = decode_kernel
        self.max_batch, self.bucket, self.check_every, self.keep = max_batch, bucket, \
            check_every, keep
        self.use_graphs = dev.type == "cuda" if use_graphs is None else use_graphs
        # torch.compile fuses each layer's small ops (norms, RoPE, masking, sampling) into a
        # few kernels; without it a decode step is ~45 kernels per layer, each a few us. The
        # layer is compiled once and serves every layer (its weights are arguments); the step's
        # head (embedding, mask) and tail (norm, logits, sampling) are compiled apart.
        self.compile = dev.type == "cuda" and not exact if compile is None else compile
        if exact and self.compile:
            raise ValueError("exact mode runs HF's eager kernels: it cannot be compiled")
        self.f_pre, self.f_layer, self.f_post = _decode_pre, self.dec.layer_fn, _decode_post
        if self.compile:  # one compiled layer per (batch, cache length) in use
            import torch._dynamo.config as dc
            import torch._inductor.config as ic

            for knob in ("cache_size_limit", "recompile_limit"):
                if hasattr(dc, knob):
                    setattr(dc, knob, max(getattr(dc, knob), 64))
            # exact_casts: round to bf16 where eager PyTorch (and so HF) rounds, also inside
            # fused kernels (inductor otherwise keeps fused intermediates in float32)
            opts = {"emulate_precision_casts": True} \
                if exact_casts and hasattr(ic, "emulate_precision_casts") else None
            self.f_pre, self.f_layer, self.f_post = (
                torch.compile(f, fullgraph=True, dynamic=False, options=opts)
                for f in (_decode_pre, self.dec.layer_fn, _decode_post))
        cfg = model.config
        eos = cfg.eos_token_id if eos_token_id is None else eos_token_id
        if isinstance(eos, (list, tuple)):
            eos = eos[0]
        self.eos = -1 if eos is None else int(eos)
        pad = pad_token_id if pad_token_id is not None else getattr(cfg, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else max(self.eos, 0))
        self.fill = torch.tensor(max(self.eos, self.pad_id), device=dev)
        self.vocab_hash = mix32(torch.arange(self.dec.shape.vocab, device=dev) + 0x2545F491)
        self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self._batches: dict[tuple, _Batch] = {}

    def _batch(self, b: int, length: int, new: int, dec: Decoding) -> _Batch:
        key = (b, length, new, dec)
        if key not in self._batches:
            while len(self._batches) >= self.keep:
                self._batches.pop(next(iter(self._batches)))
            self._batches[key] = _Batch(self, b, length, new, dec)
        else:
            self._batches[key] = self._batches.pop(key)  # most recently used last
        return self._batches[key]

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int,
                 decoding: Decoding = Decoding(), seeds: list[int] | None = None,
                 tails: list[list[int]] | None = None,
                 progress: Callable[[int], None] | None = None) -> Output:
        """Continue each prompt by up to `max_new_tokens` tokens (stopping at EOS).

        seeds: one per prompt (sampling draws depend only on it). tails: per prompt, tokens
        that follow it in the source document, scored (teacher-forced) for `Output.nll`.
        """
        n = len(prompts)
        if n == 0:
            return Output([], [], [], []) if tails is not None else Output([], None)
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        seeds = list(seeds) if seeds is not None else [0] * n
        if len(seeds) != n or (tails is not None and len(tails) != n):
            raise ValueError("seeds and tails need one entry per prompt")
        limit = self.dec.shape.max_positions
        for i, p in enumerate(prompts):
            need = len(p) + max(max_new_tokens, len(tails[i]) if tails else 0)
            if need > limit:
                raise ValueError(f"prompt {i}: {len(p)} tokens + {max_new_tokens} new exceed "
                                 f"the model's {limit} positions")
        order = sorted(range(n), key=lambda i: (len(prompts[i]), len(tails[i]) if tails else 0))
        tokens: list[list[int]] = [[] for _ in range(n)]
        stats: list | None = [None] * n if tails is not None else None
        for start in range(0, n, self.max_batch):
            idx = order[start:start + self.max_batch]
            self._run_batch(idx, prompts, tails, seeds, max_new_tokens, decoding, tokens, stats)
            if progress is not None:
                progress(len(idx))
        if stats is None:
            return Output(tokens, None)
        return Output(tokens, [-sum(lp) / max(1, len(lp)) for lp, _ in stats],
                      [lp for lp, _ in stats], [z for _, z in stats])

    def _run_batch(self, idx, prompts, tails, seeds, new, dec, tokens, stats):
        d = self.dec
        dev = d.device
        n = len(idx)
        # a compiled step is specialised to its shapes: keep one batch shape per engine
        b = self.max_batch if self.compile or n > self.max_batch // 2 else -(-n // 8) * 8
        rows = idx + [idx[0]] * (b - n)  # padding rows repeat the first request
        w = -(-max(len(prompts[i]) for i in idx) // self.bucket) * self.bucket
        tail = max((len(tails[i]) for i in idx), default=0) if tails is not None else 0
        length = -(-(w + max(new, tail)) // 16) * 16  # aligned rows for attention kernels
        st = self._batch(b, length, new, dec)
        width = w + tail
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        pad = torch.empty(b, dtype=torch.long)
        ends = torch.empty(b, dtype=torch.long)
        for j, i in enumerate(rows):
            p = prompts[i]
            t = tails[i] if tails is not None else []
            ids[j, w - len(p):w] = torch.tensor(p)
            if t:
                ids[j, w:w + len(t)] = torch.tensor(t)
            pad[j], ends[j] = w - len(p), w + len(t)
        padded = bool((pad > 0).any())
        ids, pad, ends = ids.to(dev), pad.to(dev), ends.to(dev)
        # prefill: causal, keys from the row's first real token on; pad queries see themselves.
        # (The cache length is a multiple of 16 whatever the prompt width, so prompts need no
        # bucketing for the decode step's sake; without left padding the mask is plain causal.)
        ar = torch.arange(width, device=dev)
        mask = None
        if padded:
            mask = (ar[None, :] <= ar[:, None])[None] & (ar[None, None, :] >= pad[:, None, None])
            mask = (mask | torch.eye(width, dtype=torch.bool, device=dev))[:, None, None]
        pos = (ar[None] - pad[:, None]).clamp(min=0)
        h = d.hidden(ids, pos, ar, st.cache, mask, width)
        if stats is not None:
            for j, v in enumerate(self._token_stats(h, ids, pad, ends, n)):
                stats[idx[j]] = v
        if d.exact and width > w:  # prefill the prompts alone, as HF does (the tails' K/V
            # left in the cache are overwritten by decode steps before they are attended)
            h = d.hidden(ids[:, :w], pos[:, :w], ar[:w], st.cache,
                         None if mask is None else mask[..., :w, :w], w)
        st.keys.copy_(row_keys([seeds[i] for i in rows], dev))
        st.pad.copy_(pad)
        st.step.zero_()
        st.done.zero_()
        st.out.fill_(int(self.fill))
        first = choose(d.logits(h[:, w - 1]), dec, st.keys, st.step, self.vocab_hash)
        st.out[:, 0] = first
        if self.eos >= 0:
            st.done.copy_(first == self.eos)
        st.tok.copy_(first)
        st.slot.fill_(w)
        st.step.fill_(1)
        st.at, st.padded = w, padded
        st.run(new - 1)
        out = st.out[:n].tolist()
        for j, i in enumerate(idx):
            row = out[j]
            if self.eos in row:
                row = row[:row.index(self.eos)]
            tokens[i] = row

    def _token_stats(self, h, ids, pad, ends, n: int,
                     chunk_elems: int = 1 << 27) -> list[tuple[list[float], list[float]]]:
        """Of each of the first `n` rows: (log p, min-k%++ score) of its tokens (pad, end)
        given their predecessors."""
        b, t, _ = h.shape
        rows = max(1, chunk_elems // (t * self.dec.shape.vocab))
        out = []
        for s in range(0, n, rows):
            e = min(n, s + rows)
            lp, z = token_stats(self.dec.logits(h[s:e, :-1]), ids[s:e, 1:])
            lp, z = lp.tolist(), z.tolist()
            for j in range(e - s):
                a, w = int(pad[s + j]), int(ends[s + j]) - 1
                out.append((lp[j][a:w], z[j][a:w]))
        return out


def next_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) per position: logits (B, T, V) float32, targets (B, T) -> (B, T).
    (Rows of the vocabulary kept contiguous: a log-softmax across a strided vocabulary axis,
    as `cross_entropy(logits.transpose(1, 2), ...)` does, is many times slower on GPU.)"""
    b, t, v = logits.shape
    return torch.nn.functional.cross_entropy(logits.reshape(b * t, v), targets.reshape(b * t),
                                             reduction="none").view(b, t)


def token_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position, from logits (B, T, V) float32 and targets (B, T): log p(target), and
    min-k%++'s normalised score (log p(target) - mu) / sigma, where mu and sigma^2 are the mean
    and variance of log p(z) for z drawn from the position's next-token distribution (Zhang et
    al. 2024, "Min-K%++"). Both (B, T)."""
    b, t, v = logits.shape
    lp = torch.log_softmax(logits.reshape(b * t, v), dim=-1)
    target = lp.gather(1, targets.reshape(b * t, 1)).squeeze(1)
    p = lp.exp()
    lp = torch.where(p > 0, lp, 0.0)  # 0 log 0 = 0 (a -inf logit: no NaN)
    mu = (p * lp).sum(1)
    var = (p * (lp - mu[:, None]).square()).sum(1)  # (centred: exact for flat predictions)
    z = (target - mu) / var.clamp(min=1e-12).sqrt()
    return target.view(b, t), z.view(b, t)

"""A lean, cache-aware forward pass over a Hugging Face causal LM's own weights.

The engine needs a forward whose every tensor shape is fixed for a given (batch, cache length),
so that one decode step can be captured as a CUDA graph: K/V go into a preallocated cache at
given columns, and attention reads the whole cache under a mask. HF's forward does not promise
that, so `Decoder` re-states the two families the sweeps use over the model's weights (no copy
except fused projections):

- Llama family (Llama, SmolLM2; grouped-query attention, RoPE with any HF scaling, RMSNorm,
  gated MLP): q/k/v fused into one matmul, gate/up into one (unless `fuse=False`).
- GPT-2 (learned positions, LayerNorm, fused c_attn already).

Numerics follow HF's modules (RMSNorm in float32, RoPE tables from the model's own rotary
module, activations from `ACT2FN`, softmax in float32), so greedy decoding matches HF
token for token in float32.

`exact=True` goes further, for bf16/fp16 too: every matmul and attention call is the one HF's
forward makes, with the same shapes (separate q/k/v and gate/up projections; attention through
the model's own HF attention function, over exactly the keys so far, with HF's mask form), so
the same kernels run and the results are bit-identical to HF's. Its attention shapes change
every decode step, so the engine captures one CUDA graph per key length for it (and does not
compile it).

A layer is a plain function of tensors (`llama_layer`, `gpt2_layer`: weights, cache, positions
and attention bias all passed in), so one `torch.compile` of it serves every layer of a model:
compiling the decode step costs one layer's compile, not the whole stack's. A layer returns its
input stream and its MLP output separately (`x`, `r`); the next layer adds them, so that add
fuses with the next norm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F


class UnsupportedModel(ValueError):
    pass


@dataclass(frozen=True)
class Shape:
    family: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    dt = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dt)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)



@dataclass(frozen=True)
class Spec:
    """What a layer function needs besides tensors (the same for every layer of a model)."""
    eps: float
    heads: int
    kv_heads: int
    head_dim: int
    scale: float
    sdpa: tuple[str, ...] | None = None  # SDPBackend names to allow (None: PyTorch's choice)
    # exact mode: HF's attention function and one of the model's attention modules (it reads
    # only settings shared by all layers: num_key_value_groups, is_causal, training)
    hf_attn: object = None
    hf_module: object = None


def _sdpa(spec: Spec, q, k, v, **kw):
    if spec.sdpa is None:
        return F.scaled_dot_product_attention(q, k, v, **kw)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([getattr(SDPBackend, n) for n in spec.sdpa]):
        return F.scaled_dot_product_attention(q, k, v, **kw)


def attn_bias(mask: torch.Tensor | None, groups: int, dtype) -> torch.Tensor | None:
    """Additive attention bias (B, 1, groups*T, S) for the grouped query rows of `_attend`,
    from a bool mask (B, 1, 1, T, S) (True: may attend). Built once per forward, not per layer.
    None stays None: plain causal attention over the first T cache columns."""
    if mask is None:
        return None
    m = mask[:, 0]
    b, _, t, s = m.shape
    if groups > 1:
        m = m.expand(b, groups, t, s).reshape(b, 1, groups * t, s)
    return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(~m, float("-inf"))


def _attend(q, k, v, kc, vc, slots, bias, spec: Spec):
    """q (B,H,T,D), k/v (B,KV,T,D) -> (B,T,H*D); k/v written into the cache at `slots`;
    attention reads cache columns [0, bias.shape[-1]), or with bias None the first T columns
    causally (a prefill without padding: the kernels HF's attention uses, flash on GPU).
    Exact mode: bias is (HF-form mask or None, key length). A decode step with the live-span
    kernel: bias is (pad, slot) (memlab/engine/attention.py)."""
    kc[:, :, slots] = k
    vc[:, :, slots] = v
    b, h, t, d = q.shape
    if spec.hf_attn is not None:
        mask, s = bias
        # contiguous like HF's cache (a concatenation) so nothing about the call differs
        out, _ = spec.hf_attn(spec.hf_module, q, kc[:, :, :s].contiguous(),
                              vc[:, :, :s].contiguous(), mask, dropout=0.0, scaling=spec.scale)
        return out.reshape(b, t, h * d)
    if isinstance(bias, tuple):
        from memlab.engine.attention import decode_attention

        return decode_attention(q, kc, vc, bias[0], bias[1], spec.scale)
    kvh = kc.shape[1]
    if bias is None:
        out = _sdpa(spec, q, kc[:, :, :t], vc[:, :, :t], is_causal=True, scale=spec.scale,
                    enable_gqa=h != kvh)
        return out.transpose(1, 2).reshape(b, t, h * d)
    key_len = bias.shape[-1]
    # grouped-query attention without copying K/V: the h/kvh query heads that share a K/V head
    # become (h/kvh)*t query rows of that head. SDPA keeps scores and softmax in float32 (fused
    # kernels on GPU), as HF's default attention does.
    qg = q.reshape(b, kvh, (h // kvh) * t, d)
    out = _sdpa(spec, qg, kc[:, :, :key_len], vc[:, :, :key_len], attn_mask=bias,
                scale=spec.scale)
    return out.reshape(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)


def llama_layer(x, r, w, kc, vc, slots, bias, rope, spec: Spec, act):
    """One Llama-family block. x: stream (B,T,E) before adding r, the previous block's MLP out."""
    ln1, qkv, qkv_b, o, o_b, ln2, gu, down = w
    x = x + r
    b, t, _ = x.shape
    cos, sin = rope
    h = _rms(x, ln1, spec.eps)
    if isinstance(qkv, tuple):  # separate projections, as HF computes them
        q, k, v = (F.linear(h, wi, None if qkv_b is None else qkv_b[i])
                   .view(b, t, -1, spec.head_dim).transpose(1, 2) for i, wi in enumerate(qkv))
    else:
        nq, nk = spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
        y = F.linear(h, qkv, qkv_b)
        q = y[..., :nq].view(b, t, spec.heads, spec.head_dim).transpose(1, 2)
        k = y[..., nq:nq + nk].view(b, t, spec.kv_heads, spec.head_dim).transpose(1, 2)
        v = y[..., nq + nk:].view(b, t, spec.kv_heads, spec.head_dim).transpose(1, 2)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    x = x + F.linear(_attend(q, k, v, kc, vc, slots, bias, spec), o, o_b)
    h = _rms(x, ln2, spec.eps)
    if isinstance(gu, tuple):
        gate, up = F.linear(h, gu[0]), F.linear(h, gu[1])
    else:
        gate, up = F.linear(h, gu).chunk(2, dim=-1)
    return x, F.linear(act(gate) * up, down)


def gpt2_layer(x, r, w, kc, vc, slots, bias, rope, spec: Spec, act):
    """One GPT-2 block (Conv1D weights: x @ W + b); same contract as `llama_layer`."""
    ln1_w, ln1_b, qkv, qkv_b, o, o_b, ln2_w, ln2_b, fc, fc_b, proj, proj_b = w
    x = x + r
    b, t, e = x.shape
    h = F.layer_norm(x, (e,), ln1_w, ln1_b, spec.eps)
    y = torch.addmm(qkv_b, h.view(-1, e), qkv).view(b, t, 3, spec.heads, spec.head_dim)
    q, k, v = (y[:, :, i].transpose(1, 2) for i in range(3))
    a = _attend(q, k, v, kc, vc, slots, bias, spec)
    x = x + torch.addmm(o_b, a.view(-1, e), o).view(b, t, e)
    h = F.layer_norm(x, (e,), ln2_w, ln2_b, spec.eps)
    m = act(torch.addmm(fc_b, h.view(-1, e), fc))
    return x, torch.addmm(proj_b, m, proj).view(b, t, e)


class Decoder:
    """Forward over (tokens, positions) that writes K/V into `cache` at `slots`.

    cache: list per layer of (K, V), each (batch, kv_heads, cache_len, head_dim).
    mask:  bool (batch, 1, 1, q_len, key_len): True where a query may attend a key; attention
           reads cache columns [0, key_len). None: causal over columns [0, q_len) (slots must
           then be 0..q_len-1).
    fuse:  Llama family: one matmul for q/k/v and one for gate/up (False: separate ones, as HF).
    sdpa:  names of the SDPBackend members attention may use (None: PyTorch's choice).
    exact: HF's own matmul shapes and attention calls (bit-identical to HF; see the module doc).
    """

    def __init__(self, model, fuse: bool = True, sdpa: tuple[str, ...] | None = None,
                 exact: bool = False):
        from transformers.activations import ACT2FN

        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
            else model.config
        if exact and sdpa:
            raise ValueError("exact mode runs HF's own attention call: it takes no sdpa= choice")
        self.model = model
        self.exact = exact
        self.fuse = fuse and not exact
        self.sdpa = tuple(sdpa) if sdpa else None
        self.dtype = next(model.parameters()).dtype
        self.device = next(model.parameters()).device
        kind = getattr(cfg, "model_type", "")
        head = model.get_output_embeddings()
        self.head_w = head.weight
        self.head_b = getattr(head, "bias", None)
        if kind in ("llama", "mistral", "qwen2") and hasattr(model, "model"):
            self._init_llama(model.model, cfg, ACT2FN)
        elif kind == "gpt2":
            self._init_gpt2(model.transformer, cfg, ACT2FN)
        else:
            raise UnsupportedModel(f"the generation engine does not know model_type={kind!r} "
                                   "(supported: llama-family, gpt2)")
        s = self.shape
        self.groups = s.heads // s.kv_heads
        if exact:
            self._init_exact(model, cfg)

    def _init_exact(self, model, cfg):
        """HF's attention function for this model (the one its attention modules call)."""
        import sys

        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        blocks = model.model.layers if self.shape.family == "llama" else model.transformer.h
        module = blocks[0].self_attn if self.shape.family == "llama" else blocks[0].attn
        impl = getattr(cfg, "_attn_implementation", None) or "eager"
        if impl not in ("sdpa", "eager"):
            raise UnsupportedModel(f"exact mode follows HF's sdpa or eager attention, not {impl!r}")
        self.mask_form = impl
        eager = sys.modules[type(module).__module__].eager_attention_forward
        fn = ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager) \
            if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface") else \
            (eager if impl == "eager" else ALL_ATTENTION_FUNCTIONS[impl])
        self.spec = dataclasses.replace(self.spec, hf_attn=fn, hf_module=module)

    def hf_mask(self, mask: torch.Tensor | None, q_len: int, key_len: int):
        """Exact mode's attention argument: (mask as HF passes it, key length). A bool mask
        (B, 1, 1, T, S) becomes HF's (B, 1, T, S): bool for sdpa (None stays None: causal),
        additive (dtype min where masked) for eager, which always gets one."""
        if self.mask_form == "sdpa":
            return (None if mask is None else mask[:, 0, :, :, :key_len]), key_len
        if mask is None:  # no padding: causal over the last q_len of key_len keys
            ar = torch.arange(key_len, device=self.device)
            m = (ar[None, :] <= ar[key_len - q_len:, None])[None, None]
        else:
            m = mask[:, 0, :, :, :key_len]
        return torch.zeros(m.shape, dtype=self.dtype, device=m.device).masked_fill(
            ~m, torch.finfo(self.dtype).min), key_len

    # -- weights -------------------------------------------------------------------------------
    def _init_llama(self, m, cfg, act_fns):
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True) \
                and cfg.model_type != "llama":
            raise UnsupportedModel("sliding-window attention is not supported by the engine")
        heads = cfg.num_attention_heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        self.shape = Shape("llama", cfg.num_hidden_layers, heads, kv, hd, cfg.vocab_size,
                           cfg.max_position_embeddings)
        self.spec = Spec(cfg.rms_norm_eps, heads, kv, hd, hd ** -0.5, self.sdpa)
        self.layer_fn = llama_layer
        self.act = act_fns[cfg.hidden_act]
        self.embed = m.embed_tokens.weight
        self.norm_f = m.norm.weight
        self.rotary = m.rotary_emb
        self.layers = []
        for layer in m.layers:
            a, p = layer.self_attn, layer.mlp
            qkv_b = None
            if a.q_proj.bias is not None:
                qkv_b = (a.q_proj.bias, a.k_proj.bias, a.v_proj.bias)
            qkv = (a.q_proj.weight, a.k_proj.weight, a.v_proj.weight)
            gu = (p.gate_proj.weight, p.up_proj.weight)
            if self.fuse:
                qkv, gu = torch.cat(qkv).detach(), torch.cat(gu).detach()
                qkv_b = None if qkv_b is None else torch.cat(qkv_b).detach()
            self.layers.append((layer.input_layernorm.weight, qkv, qkv_b, a.o_proj.weight,
                                a.o_proj.bias, layer.post_attention_layernorm.weight, gu,
                                p.down_proj.weight))
        self._rope, self._old_ropes = None, []

    def _init_gpt2(self, t, cfg, act_fns):
        if cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn:
            raise UnsupportedModel("GPT-2 with scale_attn_by_inverse_layer_idx / "
                                   "reorder_and_upcast_attn is not supported by the engine")
        heads = cfg.n_head
        hd = cfg.n_embd // heads
        self.shape = Shape("gpt2", cfg.n_layer, heads, heads, hd, cfg.vocab_size, cfg.n_positions)
        self.spec = Spec(cfg.layer_norm_epsilon, heads, heads, hd,
                         hd ** -0.5 if cfg.scale_attn_weights else 1.0, self.sdpa)
        self.layer_fn = gpt2_layer
        self.act = act_fns[cfg.activation_function]
        self.embed, self.wpe = t.wte.weight, t.wpe.weight
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.layers = [(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias,
                        b.attn.c_proj.weight, b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias,
                        b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight,
                        b.mlp.c_proj.bias) for b in t.h]

    def refresh(self) -> None:
        """After the model's weights were overwritten in place (a warm actor serving another
        trial): the fused q/k/v and gate/up matrices copied again, into the same storage, so
        compiled kernels and captured CUDA graphs stay valid."""
        if not (self.fuse and self.shape.family == "llama"):
            return  # every other weight is the model's own tensor
        with torch.no_grad():
            for layer, w in zip(self.model.model.layers, self.layers):
                a, p = layer.self_attn, layer.mlp
                torch.cat((a.q_proj.weight, a.k_proj.weight, a.v_proj.weight), out=w[1])
                if w[2] is not None:
                    torch.cat((a.q_proj.bias, a.k_proj.bias, a.v_proj.bias), out=w[2])
                torch.cat((p.gate_proj.weight, p.up_proj.weight), out=w[6])

    def rope_table(self, length: int):
        """cos/sin for positions [0, length) (or more), from the model's own rotary module.

        A longer table does not free the shorter ones: a decode step captured as a CUDA graph
        reads the table it was captured with, and replaying it after a longer batch had
        replaced that table read freed memory (found on an H200: an engine's first batch shape,
        replayed after a longer one, generated garbage). The tables are small (positions x
        head_dim x 2 values) and grow by doubling, so few are kept."""
        if self._rope is None or self._rope[0].shape[0] < length:
            if self._rope is not None:  # (doubled, up to the model's positions)
                self._old_ropes.append(self._rope)
                length = max(length, min(2 * self._rope[0].shape[0], self.shape.max_positions))
            pos = torch.arange(length, device=self.device)[None]
            probe = torch.empty(1, device=self.device, dtype=self.dtype)
            cos, sin = self.rotary(probe, pos)
            self._rope = (cos[0], sin[0])
        return self._rope

    def new_cache(self, batch: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        s = self.shape
        kw = {"device": self.device, "dtype": self.dtype}
        return [(torch.zeros(batch, s.kv_heads, length, s.head_dim, **kw),
                 torch.zeros(batch, s.kv_heads, length, s.head_dim, **kw))
                for _ in range(s.layers)]

    # -- forward -------------------------------------------------------------------------------
    def embed_in(self, ids, pos, mask, rope_len: int, key_len: int | None = None):
        """Input stream, zero residual, attention bias and RoPE (cos, sin) (None for GPT-2).
        key_len (exact mode): keys attended, default rope_len."""
        bias = self.hf_mask(mask, ids.shape[1], key_len or rope_len) if self.exact else \
            attn_bias(mask, self.groups, self.dtype)
        if self.shape.family == "llama":
            cos_t, sin_t = self.rope_table(rope_len)
            x = F.embedding(ids, self.embed)
            return x, torch.zeros_like(x), bias, (cos_t[pos].unsqueeze(1), sin_t[pos].unsqueeze(1))
        x = F.embedding(ids, self.embed) + F.embedding(pos, self.wpe)
        return x, torch.zeros_like(x), bias, None

    def final(self, x, r):
        x = x + r
        if self.shape.family == "llama":
            return _rms(x, self.norm_f, self.spec.eps)
        return F.layer_norm(x, (x.shape[-1],), *self.ln_f, self.spec.eps)

    def hidden(self, ids, pos, slots, cache, mask, key_len, layer=None):
        """Final hidden states (after the last norm) for tokens `ids` (B,T) at positions `pos`.
        layer: the layer function to use (default: the eager one)."""
        layer = layer or self.layer_fn
        x, r, bias, rope = self.embed_in(ids, pos, mask, key_len)
        for w, (kc, vc) in zip(self.layers, cache):
            x, r = layer(x, r, w, kc, vc, slots, bias, rope, self.spec, self.act)
        return self.final(x, r)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.head_w, self.head_b).float()

"""A lean, cache-aware forward pass over a Hugging Face causal LM's own weights.

The engine needs a forward whose every tensor shape is fixed for a given (batch, cache length),
so that one decode step can be captured as a CUDA graph: K/V go into a preallocated cache at
given columns, and attention reads the whole cache under a mask. HF's forward does not promise
that, so `Decoder` re-states the two families the sweeps use over the model's weights (no copy
except fused projections):

- Llama family (Llama, SmolLM2; grouped-query attention, RoPE with any HF scaling, RMSNorm,
  gated MLP): q/k/v fused into one matmul, gate/up into one.
- GPT-2 (learned positions, LayerNorm, fused c_attn already).

Numerics follow HF's modules (RMSNorm in float32, RoPE tables from the model's own rotary
module, activations from `ACT2FN`, softmax in float32), so greedy decoding matches HF
token for token in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


class UnsupportedModel(ValueError):
    pass


@dataclass
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


class Decoder:
    """Forward over (tokens, positions) that writes K/V into `cache` at `slots`.

    cache: list per layer of (K, V), each (batch, kv_heads, cache_len, head_dim).
    mask:  bool (batch, 1, 1, q_len, key_len): True where a query may attend a key; attention
           reads cache columns [0, key_len).
    """

    def __init__(self, model):
        from transformers.activations import ACT2FN

        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
            else model.config
        self.model = model
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
        self.eps = cfg.rms_norm_eps
        self.act = act_fns[cfg.hidden_act]
        self.scale = hd ** -0.5
        self.embed = m.embed_tokens.weight
        self.norm_f = m.norm.weight
        self.rotary = m.rotary_emb
        self.layers = []
        for layer in m.layers:
            a, p = layer.self_attn, layer.mlp
            qkv_b = None
            if a.q_proj.bias is not None:
                qkv_b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
            self.layers.append({
                "ln1": layer.input_layernorm.weight, "ln2": layer.post_attention_layernorm.weight,
                "qkv": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach(),
                "qkv_b": qkv_b, "o": a.o_proj.weight, "o_b": a.o_proj.bias,
                "gu": torch.cat([p.gate_proj.weight, p.up_proj.weight]).detach(),
                "down": p.down_proj.weight,
            })
        self._rope = None

    def _init_gpt2(self, t, cfg, act_fns):
        if cfg.scale_attn_by_inverse_layer_idx or cfg.reorder_and_upcast_attn:
            raise UnsupportedModel("GPT-2 with scale_attn_by_inverse_layer_idx / "
                                   "reorder_and_upcast_attn is not supported by the engine")
        heads = cfg.n_head
        hd = cfg.n_embd // heads
        self.shape = Shape("gpt2", cfg.n_layer, heads, heads, hd, cfg.vocab_size, cfg.n_positions)
        self.eps = cfg.layer_norm_epsilon
        self.act = act_fns[cfg.activation_function]
        self.scale = hd ** -0.5 if cfg.scale_attn_weights else 1.0
        self.embed, self.wpe = t.wte.weight, t.wpe.weight
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.layers = [{
            "ln1": (b.ln_1.weight, b.ln_1.bias), "ln2": (b.ln_2.weight, b.ln_2.bias),
            "qkv": b.attn.c_attn.weight, "qkv_b": b.attn.c_attn.bias,  # Conv1D: x @ W + b
            "o": b.attn.c_proj.weight, "o_b": b.attn.c_proj.bias,
            "fc": b.mlp.c_fc.weight, "fc_b": b.mlp.c_fc.bias,
            "proj": b.mlp.c_proj.weight, "proj_b": b.mlp.c_proj.bias,
        } for b in t.h]

    def rope_table(self, length: int):
        """cos/sin for positions [0, length), from the model's own rotary module."""
        if self._rope is None or self._rope[0].shape[0] < length:
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
    def _attend(self, q, k, v, cache_kv, slots, mask, key_len):
        """q (B,H,T,D), k/v (B,KV,T,D) -> (B,T,H*D); k/v written into the cache at `slots`."""
        kc, vc = cache_kv
        kc[:, :, slots] = k
        vc[:, :, slots] = v
        b, h, t, d = q.shape
        kvh = kc.shape[1]
        g = h // kvh
        # grouped-query attention without copying K/V: the g query heads that share a K/V
        # head become g*t query rows of that head. SDPA keeps scores and softmax in float32
        # (fused kernels on GPU), as HF's default attention does.
        qg = q.reshape(b, kvh, g * t, d)
        m = mask[:, 0]  # (B, 1, T, S)
        if g > 1:
            m = m.expand(b, g, t, key_len).reshape(b, 1, g * t, key_len)
        out = F.scaled_dot_product_attention(qg, kc[:, :, :key_len], vc[:, :, :key_len],
                                             attn_mask=m, scale=self.scale)
        return out.view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)

    def hidden(self, ids, pos, slots, cache, mask, key_len):
        """Final hidden states (after the last norm) for tokens `ids` (B,T) at positions `pos`."""
        s = self.shape
        b, t = ids.shape
        if s.family == "llama":
            cos_t, sin_t = self.rope_table(key_len)
            cos, sin = cos_t[pos].unsqueeze(1), sin_t[pos].unsqueeze(1)
            x = F.embedding(ids, self.embed)
            nq, nk = s.heads * s.head_dim, s.kv_heads * s.head_dim
            for L, kv in zip(self.layers, cache):
                h = _rms(x, L["ln1"], self.eps)
                qkv = F.linear(h, L["qkv"], L["qkv_b"])
                q = qkv[..., :nq].view(b, t, s.heads, s.head_dim).transpose(1, 2)
                k = qkv[..., nq:nq + nk].view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
                v = qkv[..., nq + nk:].view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
                q = q * cos + _rotate_half(q) * sin
                k = k * cos + _rotate_half(k) * sin
                x = x + F.linear(self._attend(q, k, v, kv, slots, mask, key_len), L["o"], L["o_b"])
                h = _rms(x, L["ln2"], self.eps)
                gate, up = F.linear(h, L["gu"]).chunk(2, dim=-1)
                x = x + F.linear(self.act(gate) * up, L["down"])
            return _rms(x, self.norm_f, self.eps)
        x = F.embedding(ids, self.embed) + F.embedding(pos, self.wpe)
        e = x.shape[-1]
        for L, kv in zip(self.layers, cache):
            h = F.layer_norm(x, (e,), *L["ln1"], self.eps)
            qkv = torch.addmm(L["qkv_b"], h.view(-1, e), L["qkv"]).view(b, t, 3, s.heads,
                                                                         s.head_dim)
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
            a = self._attend(q, k, v, kv, slots, mask, key_len)
            x = x + torch.addmm(L["o_b"], a.view(-1, e), L["o"]).view(b, t, e)
            h = F.layer_norm(x, (e,), *L["ln2"], self.eps)
            m = self.act(torch.addmm(L["fc_b"], h.view(-1, e), L["fc"]))
            x = x + torch.addmm(L["proj_b"], m, L["proj"]).view(b, t, e)
        return F.layer_norm(x, (e,), *self.ln_f, self.eps)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.head_w, self.head_b).float()

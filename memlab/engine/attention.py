"""Decode-step attention over a static KV cache that reads only each row's live columns.

In the engine's captured decode step every row's query attends cache columns [pad, slot]
(its left padding before, not-yet-written columns after). SDPA with a mask over the whole
cache reads and scores every column; on an H200 the cuDNN kernel PyTorch picks for that took
59% of a SmolLM2 batch-512 step (bench/results/generate_profile.json). This kernel reads a
row's K/V once for all the query heads that share it (grouped-query attention) and stops at
`slot`, a device tensor, so the step's shapes stay fixed for the CUDA graph.

Numerics are flash attention's: bf16 (or fp16) q.k and p.v products accumulated in float32,
softmax in float32, p rounded to the cache dtype before p.v.
"""

from __future__ import annotations

import torch

BLOCK = 64


def supports(head_dim: int) -> bool:
    """The kernel's head dimension is a Triton block: a power of two, 16 to 256."""
    return 16 <= head_dim <= 256 and head_dim & (head_dim - 1) == 0


def available(head_dim: int) -> bool:
    """Triton is installed and the kernel takes this head dimension."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return supports(head_dim)


def decode_attention(q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, pad: torch.Tensor,
                     slot: torch.Tensor, scale: float) -> torch.Tensor:
    """q (B, H, 1, D); kc/vc (B, KV, S, D), last dim contiguous; pad (B,) first live column
    per row; slot (1,) last live column (the same for every row) -> (B, 1, H*D)."""
    from memlab.engine._triton_decode import decode_attention_kernel

    b, h, _, d = q.shape
    if not supports(d):
        raise ValueError(f"decode_attention: head_dim {d} is not a power of two in [16, 256]")
    kvh = kc.shape[1]
    g = h // kvh
    q2 = q[:, :, 0]
    if q2.stride(-1) != 1:
        q2 = q2.contiguous()
    out = torch.empty(b, h, d, dtype=q.dtype, device=q.device)
    gp = max(16, 1 << (g - 1).bit_length())  # tl.dot wants at least 16 rows
    decode_attention_kernel[(b, kvh)](
        q2, kc, vc, out, pad, slot, scale,
        q2.stride(0), q2.stride(1), kc.stride(0), kc.stride(1), kc.stride(2),
        out.stride(0), out.stride(1), G=g, GP=gp, D=d, BLOCK=BLOCK,
        PREC="ieee" if q.dtype == torch.float32 else "tf32")
    return out.view(b, 1, h * d)


def reference(q, kc, vc, pad, slot, scale) -> torch.Tensor:
    """The same attention in plain PyTorch (float32 softmax), for tests."""
    b, h, _, d = q.shape
    kvh, s = kc.shape[1], kc.shape[2]
    ar = torch.arange(s, device=q.device)
    live = (ar[None] >= pad[:, None]) & (ar[None] <= slot)
    qg = q.reshape(b, kvh, h // kvh, d).float()
    sc = torch.einsum("bkgd,bksd->bkgs", qg, kc.float()) * scale
    sc = sc.masked_fill(~live[:, None, None], float("-inf"))
    out = torch.einsum("bkgs,bksd->bkgd", sc.softmax(-1), vc.float())
    return out.reshape(b, 1, h * d).to(q.dtype)

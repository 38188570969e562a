"""Triton kernel behind `memlab.engine.attention.decode_attention` (imported only when used:
importing it needs the `triton` package; TRITON_INTERPRET=1 at import runs it on CPU)."""

import triton
import triton.language as tl


@triton.jit
def decode_attention_kernel(Q, K, V, OUT, PAD, SLOT, scale,
                            sq_b, sq_h, sk_b, sk_h, sk_s, so_b, so_h,
                            G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr,
                            BLOCK: tl.constexpr, PREC: tl.constexpr):
    """One program per (row, K/V head): its G query heads against cache columns
    [PAD[row], SLOT] only, online softmax in float32 over blocks of BLOCK columns. PREC: the
    dots' input precision ("ieee" for float32 caches: no TF32 rounding)."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    g = tl.arange(0, GP)
    d = tl.arange(0, D)
    qmask = g[:, None] < G
    q = tl.load(Q + b * sq_b + (h * G + g[:, None]) * sq_h + d[None, :], mask=qmask, other=0.0)
    lo = tl.load(PAD + b)
    hi = tl.load(SLOT) + 1
    kbase = K + b * sk_b + h * sk_h
    vbase = V + b * sk_b + h * sk_h
    m = tl.full([GP], float("-inf"), tl.float32)
    l_sum = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, D], tl.float32)
    for n0 in range((lo // BLOCK) * BLOCK, hi, BLOCK):
        n = n0 + tl.arange(0, BLOCK)
        ok = (n >= lo) & (n < hi)
        k = tl.load(kbase + n[:, None] * sk_s + d[None, :], mask=ok[:, None], other=0.0)
        s = (tl.dot(q, tl.trans(k), input_precision=PREC) * scale).to(tl.float32)  # scale: fp64?
        s = tl.where(ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        l_sum = l_sum * alpha + tl.sum(p, 1)
        v = tl.load(vbase + n[:, None] * sk_s + d[None, :], mask=ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
        m = m_new
    out = acc / l_sum[:, None]
    tl.store(OUT + b * so_b + (h * G + g[:, None]) * so_h + d[None, :],
             out.to(OUT.dtype.element_ty), mask=qmask)

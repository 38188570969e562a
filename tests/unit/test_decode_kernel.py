"""The engine's live-span decode-attention kernel (Triton), run on CPU by Triton's interpreter:
against plain attention, and inside the engine against HF generate (float32)."""

import pytest
import torch

from memlab.engine import Decoding, Engine
from tests.unit.test_engine import EOS, PAD, gpt2, hf_greedy, llama, prompts

# on CPU the kernel runs on Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1)


@pytest.mark.parametrize("heads,kv,d", [(9, 3, 64), (4, 4, 32), (32, 8, 64), (8, 1, 16)])
def test_kernel_equals_plain_attention(heads, kv, d):
    from memlab.engine.attention import decode_attention, reference

    g = torch.Generator().manual_seed(heads * kv)
    b, s = 6, 200
    q = torch.randn(b, heads, 1, d, generator=g)
    kc, vc = (torch.randn(b, kv, s, d, generator=g) for _ in range(2))
    # first live column inside, at and past block edges (block 64); last live column too
    pad = torch.tensor([0, 1, 63, 64, 65, 130])
    for last in (130, 131, 191, 192, 199):
        slot = torch.tensor([last])
        got = decode_attention(q, kc, vc, pad, slot, d ** -0.5)
        want = reference(q, kc, vc, pad, slot, d ** -0.5)
        assert got.shape == (b, 1, heads * d)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # columns outside [pad, slot] are never read: poison them
    slot = torch.tensor([150])
    kp, vp = kc.clone(), vc.clone()
    for r in range(b):
        kp[r, :, :pad[r]] = vp[r, :, :pad[r]] = float("nan")
    kp[:, :, 151:] = vp[:, :, 151:] = float("nan")
    torch.testing.assert_close(decode_attention(q, kp, vp, pad, slot, d ** -0.5),
                               reference(q, kc, vc, pad, slot, d ** -0.5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama-gqa", "gpt2"])
def test_engine_with_kernel_matches_hf(make):
    model = make()
    ps = prompts(5)  # the interpreter runs each program in Python: keep it small
    eng = Engine(model, max_batch=8, eos_token_id=EOS, pad_token_id=PAD, decode_kernel="triton")
    assert eng.generate(ps, max_new_tokens=10).tokens == hf_greedy(model, ps, 10)
    dec = Decoding(False, 1.0, 20, 0.9)
    kw = dict(max_new_tokens=10, decoding=dec, seeds=list(range(5)))
    sdpa = Engine(model, max_batch=8, eos_token_id=EOS, pad_token_id=PAD, decode_kernel="sdpa")
    assert eng.generate(ps, **kw).tokens == sdpa.generate(ps, **kw).tokens

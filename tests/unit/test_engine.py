"""memlab's generation engine against HF `generate` (CPU, float32) and against its own promises."""

import threading

import pytest
import torch
from scipy.stats import chisquare
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from memlab.engine import Decoding, Engine, UnsupportedModel

V, EOS, PAD = 320, 7, 0


def llama(tied=False, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg).eval()


def gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                     eos_token_id=EOS, bos_token_id=EOS)
    return GPT2LMHeadModel(cfg).eval()


def lora_merged():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(llama(seed=3), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
    return model.merge_and_unload().eval()


def head_only():
    from memlab.strategies.head import untie_head

    model = llama(tied=True, seed=4)
    untie_head(model)
    with torch.no_grad():
        model.lm_head.weight.add_(0.05 * torch.randn_like(model.lm_head.weight))
    return model


def prompts(n=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(EOS + 1, V, (int(torch.randint(2, 19, (1,), generator=g)),),
                          generator=g).tolist() for _ in range(n)]


def hf_greedy(model, ps, new):
    """HF generate, greedy, batched with left padding; cut at EOS like the engine."""
    w = max(len(p) for p in ps)
    ids = torch.full((len(ps), w), PAD)
    mask = torch.zeros_like(ids)
    for j, p in enumerate(ps):
        ids[j, w - len(p):] = torch.tensor(p)
        mask[j, w - len(p):] = 1
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                             pad_token_id=PAD, eos_token_id=EOS)[:, w:].tolist()
    return [r[:r.index(EOS)] if EOS in r else r for r in out]


@pytest.mark.parametrize("make", [llama, gpt2, lora_merged, head_only],
                         ids=["llama-gqa", "gpt2", "llama-lora-merged", "llama-head-only"])
def test_greedy_matches_hf_token_for_token(make):
    model = make()
    ps = prompts()
    # batches of 4 and 8 with length buckets of 8: several batch shapes, padding rows, reuse
    for max_batch in (4, 8):
        eng = Engine(model, max_batch=max_batch, bucket=8, eos_token_id=EOS, pad_token_id=PAD,
                     check_every=3)
        assert eng.generate(ps, max_new_tokens=25).tokens == hf_greedy(model, ps, 25)


def assert_hf_nll(model, ps, tails, nll):
    """Each row's NLL equals HF's forward cross-entropy over prompt + tail."""
    for p, t, got in zip(ps, tails, nll):
        ids = torch.tensor([p + t])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1]
        want = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
        assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("make", [llama, gpt2], ids=["llama-gqa", "gpt2"])
def test_equal_length_prompts_causal_prefill(make):
    """Prompts of one length: no left padding, the prefill takes the plain causal path
    (greedy still equals HF; tails of several lengths, right-padded, still give HF's NLL)."""
    model = make()
    ps = [p[:5] for p in prompts(9) if len(p) >= 5]
    eng = Engine(model, max_batch=8, eos_token_id=EOS, pad_token_id=PAD)
    assert eng.generate(ps, max_new_tokens=20).tokens == hf_greedy(model, ps, 20)
    tails = [list(range(20, 20 + k)) for k in range(len(ps))]
    out = eng.generate(ps, max_new_tokens=3, tails=tails)
    assert_hf_nll(model, ps, tails, out.nll)


@pytest.mark.parametrize("make,attn", [(llama, "sdpa"), (llama, "eager"), (gpt2, "sdpa")],
                         ids=["llama-gqa-sdpa", "llama-gqa-eager", "gpt2-sdpa"])
def test_exact_mode_equals_hf_in_bf16(make, attn):
    """exact=True runs HF's own kernels with HF's shapes: greedy equals HF generate token for
    token in bf16 (where near-ties make the default build differ: 13 of these 16 left-padded
    llama rows matched it when this test was written), with and without left padding, with
    tails (the NLL pass). Left-padded rows are bit-identical for the same padding, so those
    run as HF's one batch; equal-length prompts also in smaller batches."""
    model = make().to(torch.bfloat16)
    model.config._attn_implementation = attn
    padded = [p[:2] + p for p in prompts(16)]
    equal = [p[:6] for p in prompts(40) if len(p) >= 6]
    for ps, batches in ((padded, (16,)), (equal, (8, 32))):
        want = hf_greedy(model, ps, 30)
        for max_batch in batches:
            eng = Engine(model, max_batch=max_batch, eos_token_id=EOS, pad_token_id=PAD,
                         exact=True)
            assert eng.generate(ps, max_new_tokens=30).tokens == want
            tails = [list(range(20, 20 + k % 5)) for k in range(len(ps))]
            assert eng.generate(ps, max_new_tokens=30, tails=tails).tokens == want


def test_attention_backend_choice_keeps_the_tokens():
    model = llama()
    ps = prompts(6)
    want = hf_greedy(model, ps, 10)
    for backends in (("MATH",), ("FLASH_ATTENTION", "MATH")):
        eng = Engine(model, max_batch=8, eos_token_id=EOS, pad_token_id=PAD, sdpa=backends)
        assert eng.generate(ps, max_new_tokens=10).tokens == want


def test_eos_stops_a_row_and_is_cut():
    model = llama()
    ps = prompts(6)
    free = Engine(model, max_batch=8, eos_token_id=-1).generate(ps, max_new_tokens=12).tokens
    eos = free[0][3]  # a token row 0 emits at step 3: make it the EOS
    out = Engine(model, max_batch=8, eos_token_id=eos, pad_token_id=PAD).generate(
        ps, max_new_tokens=12).tokens
    for f, o in zip(free, out):
        assert o == (f[:f.index(eos)] if eos in f else f)
    assert len(out[0]) <= 3


def test_tail_nll_equals_hf_forward():
    model = gpt2()
    ps = prompts(5)
    tails = [list(range(20, 20 + k)) for k in (0, 1, 4, 9, 2)]
    out = Engine(model, max_batch=4, eos_token_id=EOS).generate(ps, max_new_tokens=3, tails=tails)
    assert_hf_nll(model, ps, tails, out.nll)


def test_sampling_depends_only_on_the_seed():
    model = llama()
    ps = prompts(9)
    dec = Decoding(greedy=False, temperature=0.9, top_k=20, top_p=0.95)
    seeds = [1000 + i for i in range(9)]
    a = Engine(model, max_batch=4).generate(ps, max_new_tokens=10, decoding=dec, seeds=seeds)
    b = Engine(model, max_batch=16).generate(ps[::-1], max_new_tokens=10, decoding=dec,
                                             seeds=seeds[::-1])
    assert a.tokens == b.tokens[::-1]
    c = Engine(model, max_batch=4).generate(ps, max_new_tokens=10, decoding=dec,
                                            seeds=[s + 1 for s in seeds])
    assert a.tokens != c.tokens


def _first_token_probs(model, prompt, dec: Decoding) -> torch.Tensor:
    """The distribution the engine should sample the first token from (HF's warpers' rules)."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1].double() / dec.temperature
    keep = torch.ones_like(logits, dtype=torch.bool)
    if dec.top_k:
        keep &= logits >= logits.topk(dec.top_k).values[-1]
    probs = torch.softmax(logits.masked_fill(~keep, float("-inf")), -1)
    if dec.top_p < 1:
        p, order = probs.sort(descending=True)
        nucleus = torch.zeros_like(keep)
        nucleus[order[(p.cumsum(0) - p) < dec.top_p]] = True
        probs = torch.softmax(logits.masked_fill(~(keep & nucleus), float("-inf")), -1)
    return probs


@pytest.mark.parametrize("dec", [Decoding(False, 1.0, 12, 1.0), Decoding(False, 1.5, 0, 0.6),
                                 Decoding(False, 0.7, 30, 0.8)],
                         ids=["top-k", "top-p", "top-k+top-p"])
def test_sampled_tokens_follow_the_requested_distribution(dec):
    """Draw 6000 first tokens (one seed each) and test them against the truncated, renormalised
    distribution: every draw inside its support, frequencies by a chi-square test (p > 1e-3);
    the same draws must be rejected against the untruncated distribution (the test can fail)."""
    model = llama(seed=5)
    with torch.no_grad():  # sharpen the toy model a little so the tail is thin but non-empty
        model.lm_head.weight.mul_(6.0)
    prompt = prompts(1, seed=9)[0]
    n = 6000
    out = Engine(model, max_batch=1024).generate([prompt] * n, max_new_tokens=1, decoding=dec,
                                                 seeds=list(range(n)))
    drawn = torch.tensor([t[0] if t else EOS for t in out.tokens])
    want = _first_token_probs(model, prompt, dec)
    support = want > 0
    assert support[drawn].all(), "a token outside the top-k / top-p support was drawn"
    assert 2 <= int(support.sum()) < V

    def pvalue(probs):
        counts = torch.bincount(drawn, minlength=V).double()
        keep = probs > 0
        exp = probs[keep] * n
        big = exp >= 5  # pool cells too small for the chi-square approximation
        obs = torch.cat([counts[keep][big], counts[keep][~big].sum()[None]])
        exp = torch.cat([exp[big], exp[~big].sum()[None]])
        if exp[-1] == 0:
            obs, exp = obs[:-1], exp[:-1]
        return chisquare(obs.numpy(), exp.numpy() * obs.sum().item() / exp.sum().item()).pvalue

    assert pvalue(want) > 1e-3
    untruncated = torch.softmax(
        model(torch.tensor([prompt])).logits[0, -1].double().detach() / dec.temperature, -1)
    assert pvalue(untruncated) < 1e-6


def test_bad_input_is_refused():
    model = llama()
    eng = Engine(model, max_batch=4)
    with pytest.raises(ValueError, match="exceed"):
        eng.generate([[9] * 100], max_new_tokens=40)
    with pytest.raises(ValueError, match="at least one token"):
        eng.generate([[]], max_new_tokens=4)
    with pytest.raises(ValueError, match="bad decoding"):
        Decoding(greedy=False, top_p=0.0)
    from transformers import BertConfig, BertLMHeadModel

    with pytest.raises(UnsupportedModel, match="bert"):
        Engine(BertLMHeadModel(BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=64,
                                          is_decoder=True)))
    with pytest.raises(ValueError, match="power of two"):  # head_dim 20: no Triton block
        Engine(LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=80, intermediate_size=64,
                                            num_hidden_layers=1, num_attention_heads=4)),
               decode_kernel="triton")
    with pytest.raises(ValueError, match="exact mode"):
        Engine(model, exact=True, decode_kernel="triton")
    with pytest.raises(ValueError, match="cannot be compiled"):
        Engine(model, exact=True, compile=True)


@pytest.mark.parametrize("exact", [False, True], ids=["memlab", "memlab-exact"])
def test_generation_stage_rows_same_with_engine_and_hf(tmp_path, exact):
    """The stage's rows (tokens, texts, NLL) do not depend on which path produced them
    (greedy, float32), so a study's numbers carry over from CPU to GPU runs."""
    from memlab.config.schema import StudyConfig
    from memlab.stages.generate import generate_rows

    docs, model, tok = tiny_lm(tmp_path, 40, seed=2)
    cfg = StudyConfig()
    a = cfg.attack
    a.prefix_tokens, a.suffix_tokens, a.max_new_tokens, a.batch_size = 12, 12, 16, 8
    cfg.train.seq_len = 40
    rows = [{"doc_id": d["doc_id"], "text": d["text"], "split": "member", "dup_count": 1}
            for d in docs[:13]]
    rows.append({"doc_id": "short", "text": "too short", "split": "member", "dup_count": 1})
    hf = generate_rows(model, tok, rows, cfg, "part-00000.parquet")
    eng = Engine(model, max_batch=8, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                 exact=exact)
    mine = generate_rows(model, tok, rows, cfg, "part-00000.parquet", eng)
    assert len(hf) == len(mine) == 13  # the short document is skipped by both
    for h, e in zip(hf, mine):
        assert_same_row(h, e, "seed")
    # as the stage's actor runs it: two shards at once in two threads, sharing the engine
    from concurrent.futures import ThreadPoolExecutor

    from memlab.components.loaded import TimedLock

    locks = (TimedLock(), threading.Lock())

    def shard(part):
        rows_out = generate_rows(model, tok, rows[part], cfg, "part-00000.parquet", eng, *locks)
        return rows_out, locks[0].last

    with ThreadPoolExecutor(2) as pool:
        (a, (_, held_a)), (b, (_, held_b)) = pool.map(shard, (slice(0, 7), slice(7, None)))
    for e, t in zip(mine, a + b, strict=True):  # NLL: other batches, other sums
        assert_same_row(e, t)
    assert held_a > 0 and held_b > 0 and locks[0].last == (0.0, 0.0)  # per thread


def tiny_lm(tmp_path, docs: int, seed: int):
    """Demo-corpus documents and a tiny random-init Llama (tokenizer trained on them)."""
    from memlab.components.corpus import generate_demo_corpus
    from memlab.components.models import load_causal_lm, load_tokenizer, prepare_base_model
    from memlab.config.schema import ModelSection

    found = generate_demo_corpus(docs, seed=seed)
    m = ModelSection(source="tiny", cache_dir=str(tmp_path))
    path = prepare_base_model(m, [d["text"] for d in found], seed=0)["path"]
    return found, load_causal_lm(path).eval(), load_tokenizer(path)


NUMERIC = ("doc_nll", "token_logp", "token_z")  # other batch shapes: other float sums


def assert_same_row(a: dict, b: dict, *other: str) -> None:
    """Two generation rows agree: every column equal but `other`, the teacher-forced numbers
    close."""
    skip = (*NUMERIC, *other)
    assert {k: v for k, v in a.items() if k not in skip} == \
        {k: v for k, v in b.items() if k not in skip}
    assert b["doc_nll"] == pytest.approx(a["doc_nll"], rel=1e-4)
    assert b["token_logp"] == pytest.approx(a["token_logp"], rel=1e-3, abs=1e-4)
    assert b["token_z"] == pytest.approx(a["token_z"], rel=1e-3, abs=1e-3)


@pytest.mark.slow
def test_compiled_step_matches_eager_step():
    """torch.compile'd decode step (the GPU default) gives the eager step's tokens (CPU, fp32)."""
    model = llama()
    ps = prompts(9)
    for dec in (Decoding(), Decoding(False, 1.0, 20, 0.9)):
        kw = dict(max_new_tokens=12, decoding=dec, seeds=list(range(9)))
        eager = Engine(model, max_batch=8, compile=False).generate(ps, **kw).tokens
        assert Engine(model, max_batch=8, compile=True).generate(ps, **kw).tokens == eager

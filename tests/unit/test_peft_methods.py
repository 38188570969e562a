"""Issue 33, part 1: every peft method (and BitFit) as a strategy on the tiny models: it trains,
exports and reloads to the same logits, reports its trainable parameters; its settings are
peft's (an unknown one is one line naming the valid ones); BitFit on a model without biases is
refused before anything runs."""

import subprocess
import sys

import pytest
import torch

from memlab.components.models import load_causal_lm, load_tokenizer, load_trained
from memlab.components.training import make_setup, micro_parts
from memlab.config.schema import StudyConfig
from memlab.io.shards import write_manifest
from tests.conftest import ROOT, SWEEPS

METHODS = [("lora", "llama"), ("dora", "llama"), ("ia3", "llama"), ("loha", "llama"),
           ("lokr", "llama"), ("vera", "llama"), ("prefix", "llama"), ("prompt", "llama"),
           ("bitfit", "gpt2"), ("ia3", "gpt2"), ("lora", "gpt2")]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A tiny Llama and a tiny GPT-2 (tokenizer trained on a few demo documents)."""
    from memlab.components.corpus import generate_demo_corpus
    from memlab.components.models import prepare_base_model

    texts = [d["text"] for d in generate_demo_corpus(30, seed=0)]
    out = {}
    for family in ("llama", "gpt2"):
        cfg = StudyConfig()
        cfg.model.source, cfg.model.tiny.family = "tiny", family
        cfg.model.cache_dir = str(tmp_path_factory.mktemp("models"))
        out[family] = prepare_base_model(cfg.model, texts)["path"]
    return out


def _logits(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return logits[:, -ids.shape[1]:]  # (peft's prompt tuning also returns the virtual tokens')


@pytest.mark.parametrize("strategy,family", METHODS, ids=[f"{s}-{f}" for s, f in METHODS])
def test_a_method_trains_exports_and_reloads_to_the_same_logits(bases, tmp_path, strategy,
                                                                 family):
    torch.manual_seed(0)
    cfg = StudyConfig()
    cfg.train.strategy, cfg.seed = strategy, 0
    base = bases[family]
    tok = load_tokenizer(base)
    setup = make_setup(cfg, load_causal_lm(base, torch.float32), "cpu", torch.float32, 2)
    assert 0 < setup.trainable < setup.total  # (the base model frozen)
    ids = torch.tensor([tok("the patient was seen on the ward at noon")["input_ids"]] * 2)
    for _ in range(2):  # (adapters initialised to the identity must move)
        setup.step(micro_parts(ids, torch.ones_like(ids), ids.clone(), 1, False), False)
    setup.module.eval()
    trained = _logits(setup.module, ids)
    assert not torch.allclose(trained, _logits(load_causal_lm(base, torch.float32).eval(), ids))
    setup.export(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    write_manifest(tmp_path, outputs=["model"], saved=setup.saved, base_model=base)
    model, _ = load_trained(tmp_path)
    assert torch.allclose(_logits(model, ids), trained, atol=1e-5)


def _validate(*sets: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "memlab.cli", "validate",
           str(SWEEPS / "smoke.yaml"), *(a for s in sets for a in ("--set", s))]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("sets, says", [
    (["train.dora.lora_alpa=3"], "train.dora.lora_alpa: unknown key (did you mean "
     "'lora_alpha'?); train.dora takes: lr, r, lora_alpha, lora_dropout, target_modules, peft"),
    (["grid.train.strategy=[dora]", "train.dora.peft={use_rsloraa: true}"],
     "train.dora.peft.use_rsloraa: not a field of peft's LoraConfig (its fields: "),
    (["grid.train.strategy=[vera]", "train.vera.r=0"], "train.vera.r: must be >= 1"),
    (["grid.train.strategy=[bitfit]"], "bitfit trains only bias terms, and this model has none"),
])
def test_a_bad_setting_of_a_method_is_one_line(sets, says):
    r = _validate(*sets)
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line, line


def test_the_methods_fields_are_peft_s():
    """Each method's settings (but memlab's lr and peft) are fields of its peft config class:
    a study writes peft's names."""
    import dataclasses

    import peft

    from memlab.strategies import STRATEGIES

    classes = {"dora": "LoraConfig", "ia3": "IA3Config", "loha": "LoHaConfig",
               "lokr": "LoKrConfig", "vera": "VeraConfig", "prefix": "PrefixTuningConfig",
               "prompt": "PromptTuningConfig"}
    for name, cls in classes.items():
        ours = {f.name for f in dataclasses.fields(STRATEGIES[name].settings)} - {"lr", "peft"}
        theirs = {f.name for f in dataclasses.fields(getattr(peft, cls))}
        assert ours <= theirs, (name, ours - theirs)


def test_bitfit_is_refused_on_a_model_without_biases_and_allowed_on_gpt2():
    assert _validate("grid.train.strategy=[bitfit]", "model.tiny.family=gpt2").returncode == 0


@pytest.mark.parametrize("group, want", [
    ("attention_qk", ["k_proj", "q_proj"]), ("attention_vo", ["o_proj", "v_proj"]),
    ("mlp", ["down_proj", "gate_proj", "up_proj"]), ("attention", ["k_proj", "o_proj",
                                                                   "q_proj", "v_proj"])])
def test_lora_target_groups_of_the_design_space(bases, group, want):
    """train.lora.targets names the group of modules that get adapters (sweeps/lora-design.yaml
    spans them); all_linear: every linear layer but the output head."""
    cfg = StudyConfig()
    cfg.train.strategy, cfg.train.lora.targets = "lora", group
    setup = make_setup(cfg, load_causal_lm(bases["llama"], torch.float32), "cpu", torch.float32,
                       1)
    assert setup.record["lora_targets"] == want
    cfg.train.lora.targets = "all_linear"
    everything = make_setup(cfg, load_causal_lm(bases["llama"], torch.float32), "cpu",
                            torch.float32, 1)
    adapted = {n.split(".lora_A")[0].split(".")[-1] for n, p in everything.module.named_parameters()
               if p.requires_grad and "lora_A" in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                       "down_proj"}

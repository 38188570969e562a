"""The train stage on tiny models, without Ray: each strategy trains exactly what it claims,
and what it saves loads back for generation."""

import pytest
import torch

from memlab.components.models import load_causal_lm, load_trained, prepare_base_model
from memlab.config.keys import count_steps
from memlab.config.schema import StudyConfig
from memlab.stages.data import build_dataset
from tests.conftest import stage


def _setup(tmp_path, family: str, strategy: str, **train):
    cfg = StudyConfig()
    cfg.data.num_docs, cfg.data.num_members, cfg.data.num_nonmembers = 60, 4, 2
    cfg.data.dup_mix = [1, 2]
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp_path / "cache")
    cfg.model.tiny.family = family
    cfg.train.strategy, cfg.train.seq_len, cfg.train.batch_size = strategy, 32, 2
    for k, v in train.items():
        setattr(cfg.train, k, v)
    data = tmp_path / "data"
    build_dataset(cfg.data, data)
    from memlab.components.data import read_dataset

    base = prepare_base_model(cfg.model, [r["text"] for r in read_dataset(data)])["path"]
    return cfg, base, data


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_head_only_trains_only_the_untied_head(tmp_path, family):
    cfg, base, data = _setup(tmp_path, family, "head")
    cfg.train.head.lr = 1e-2
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    before = load_causal_lm(base).state_dict()
    after, _ = load_trained(tmp_path / "train")
    after_sd = after.state_dict()
    assert any("untied" in n for n in man["notes"])  # tiny models tie their head by default
    assert man["setup"]["head_untied"] is True  # (logged as the run's param train.head_untied)
    head = after.get_output_embeddings().weight
    assert head.data_ptr() != after.get_input_embeddings().weight.data_ptr()
    changed = {k for k in before if not torch.equal(before[k], after_sd[k])}
    head_keys = {k for k, v in after_sd.items() if v.data_ptr() == head.data_ptr()}
    assert changed and changed <= head_keys | {"lm_head.weight"}, changed
    assert man["trainable_params"] == head.numel()
    assert man["train_steps"] == count_steps(2 * 1 + 2 * 2, cfg) == 3


def test_lora_saves_an_adapter_that_merges(tmp_path):
    """GPT-2 with the default targets: adapters on its attention's c_attn (q, k, v in one
    Conv1D) and attn.c_proj, never on the MLP's c_proj or c_fc."""
    cfg, base, data = _setup(tmp_path, "gpt2", "lora")
    assert cfg.train.lora.target_modules == []  # the default
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    assert man["saved"] == "adapter"
    assert man["setup"]["lora_targets"] == ["attn.c_attn", "attn.c_proj"]
    assert (tmp_path / "train" / "model" / "adapter_config.json").is_file()
    merged, _ = load_trained(tmp_path / "train")
    before = load_causal_lm(base).state_dict()
    diff = [k for k, v in merged.state_dict().items() if k in before
            and not torch.equal(before[k], v)]
    assert {k.rsplit(".", 2)[-2] for k in diff} == {"c_attn", "c_proj"}  # both changed
    assert all(".attn." in k for k in diff)
    assert 0 < man["trainable_frac"] < 0.5
    # a rerun is a no-op: the manifest says the stage is done
    mtime = (tmp_path / "train" / "_MANIFEST.json").stat().st_mtime_ns
    stage("train", cfg, base=base, data=data, train=tmp_path / "train")
    assert (tmp_path / "train" / "_MANIFEST.json").stat().st_mtime_ns == mtime


def test_full_under_deepspeed_zero3_exports_the_whole_model(tmp_path):
    cfg, base, data = _setup(tmp_path, "llama", "full")
    cfg.train.full.zero_stage = 3
    cfg.train.full.lr = 1e-3
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    assert man["engine"] == "deepspeed-zero3"
    assert man["trainable_params"] == man["total_params"]
    model, _ = load_trained(tmp_path / "train")
    before = load_causal_lm(base).state_dict()
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(after[k].shape == before[k].shape for k in before)  # gathered, not partitions
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2


def test_lora_defaults_per_architecture_and_its_peft_options(tmp_path):
    import json

    from memlab.strategies.lora import lora_targets

    cfg, base, data = _setup(tmp_path, "llama", "lora")
    cfg.train.lora.bias, cfg.train.lora.modules_to_save = "lora_only", ["lm_head"]
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    assert man["setup"]["lora_targets"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    adapter = json.loads((tmp_path / "train" / "model" / "adapter_config.json").read_text())
    assert adapter["bias"] == "lora_only" and adapter["modules_to_save"] == ["lm_head"]
    assert lora_targets(cfg, "bloom") is None  # peft's own default for other architectures
    cfg.train.lora.target_modules = ["q_proj"]
    assert lora_targets(cfg, "llama") == ["q_proj"]  # what the config names wins



def _losses(folder) -> list[float]:
    import json

    return json.loads((folder / "metrics.json").read_text())["losses"]


@pytest.mark.parametrize("strategy", ["lora", "full"])
def test_micro_batches_give_the_one_pass_gradient(tmp_path, strategy):
    """train.micro_batch: the step's gradient accumulated over passes of one sequence, each
    weighted by its share of the step's loss tokens: the same losses as one pass (float32 on
    CPU: up to rounding), for plain torch and for DeepSpeed's gradient accumulation."""
    cfg, base, data = _setup(tmp_path, "llama", strategy)
    cfg.train.batch_size, cfg.train.full.lr, cfg.train.lora.lr = 4, 1e-3, 1e-2
    cfg.train.lora.dropout = 0.0  # (dropout masks are drawn per pass: other random numbers)
    whole = stage("train", cfg, base=base, data=data, train=tmp_path / "whole").manifest
    cfg.train.micro_batch = 1
    micro = stage("train", cfg, base=base, data=data, train=tmp_path / "micro").manifest
    assert micro["engine"] == whole["engine"]
    a, b = _losses(tmp_path / "whole"), _losses(tmp_path / "micro")
    assert len(a) == len(b) == whole["train_steps"] >= 2
    assert b == pytest.approx(a, rel=1e-4)
    assert a[-1] < a[0]  # it trained


def test_full_in_plain_torch_follows_deepspeed(tmp_path):
    """train.full.engine=torch (what auto picks for a trial on one GPU) trains every weight
    with the same optimizer, clipping and schedule as DeepSpeed's engine: in float32 the two
    loss curves agree, and the export is the whole model."""
    from memlab.config.keys import resolved, stage_keys

    cfg, base, data = _setup(tmp_path, "llama", "full")
    cfg.train.full.lr, cfg.train.batch_size = 1e-3, 2
    ds = stage("train", cfg, base=base, data=data, train=tmp_path / "ds").manifest
    cfg.train.full.engine = "torch"
    pt = stage("train", cfg, base=base, data=data, train=tmp_path / "pt").manifest
    assert (ds["engine"], pt["engine"]) == ("deepspeed-zero2", "torch")
    assert pt["trainable_params"] == pt["total_params"] == ds["total_params"]
    assert _losses(tmp_path / "pt") == pytest.approx(_losses(tmp_path / "ds"), rel=1e-4)
    model, _ = load_trained(tmp_path / "pt")
    before = load_causal_lm(base).state_dict()
    assert sum(not torch.equal(before[k], v) for k, v in model.state_dict().items()) > \
        len(before) // 2

    # what auto resolves to, and the keys: a CPU trial keeps the key it had (DeepSpeed, eager)
    cfg.train.full.engine = "auto"
    cpu = stage_keys(cfg).train
    assert resolved(cfg)["train_engine"] == "deepspeed"
    cfg.resources.full.gpu = 1
    assert (resolved(cfg)["train_engine"], resolved(cfg)["train_compiled"]) == ("torch", "no")
    gpu = stage_keys(cfg).train
    cfg.resources.full.workers = 2
    assert resolved(cfg)["train_engine"] == "deepspeed"
    assert len({cpu, gpu, stage_keys(cfg).train}) == 3
    cfg.resources.full.workers, cfg.train.compile = 1, "on"
    assert resolved(cfg)["train_compiled"] == "yes" and stage_keys(cfg).train != gpu
    cfg.train.compile, cfg.train.compile_min_tokens = "auto", 1
    assert resolved(cfg)["train_compiled"] == "yes"
    key = stage_keys(cfg).train
    cfg.train.micro_batch = 1  # how a step is split is in no key
    assert stage_keys(cfg).train == key
    cfg.resources.full.workers = 2  # DeepSpeed is never compiled: not in its key either
    assert resolved(cfg)["train_compiled"] == "no"


def test_a_micro_batch_without_loss_tokens_keeps_the_step_loss_finite(tmp_path):
    """loss_on=response, micro-batches of one row: a row whose response starts beyond seq_len
    has no loss token (its mean loss is NaN, weight 0); the step's loss is its other rows'."""
    from memlab.components.training import TorchSetup, micro_parts

    cfg, base, data = _setup(tmp_path, "llama", "head")
    model = load_causal_lm(base)
    setup = TorchSetup(model, cfg, 0.0, "cpu", torch.float32, 2)
    ids = torch.randint(1, 50, (2, 8))
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[0] = -100  # row 0: no loss token
    whole = setup.step(micro_parts(ids, mask, labels, 1, False), False)
    parts = setup.step(micro_parts(ids, mask, labels, 2, False), False)
    assert torch.isfinite(parts) and parts.item() == pytest.approx(whole.item(), rel=1e-5)


def test_the_manifest_counts_the_sequences_trained_not_full_batches(tmp_path):
    """Issue 32: a stream of 6 sequences in batches of 4 is a batch of 4 and one of 2 per
    epoch; 2 epochs cut at 3 steps train 6 + 4 = 10 sequences (steps x batch_size said 12)."""
    cfg, base, data = _setup(tmp_path, "gpt2", "head", batch_size=4, epochs=2, max_steps=3)
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    assert man["train_steps"] == 3
    assert man["train_sequences"] == 10

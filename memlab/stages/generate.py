"""Generate stage: the extraction attack, over Parquet shards with Ray Data.

For every document of the dataset (members and non-members) the prompt is its first
`prefix_tokens` tokens and the reference suffix the next `suffix_tokens` (text, papers); for
instruction and chat records (memlab/components/formats.py) the prompt is everything before the
response plus the response's first `prefix_tokens` tokens, the suffix the response's next
`suffix_tokens` (`attack.prompt_from: start` counts from the document start instead). The
fine-tuned model samples `samples_per_prompt` continuations of `max_new_tokens` tokens. The
same pass records the document's mean next-token NLL over its first `train.seq_len` tokens (or
its whole prompt, when longer), for held-out perplexity and membership signals.

Population documents (data.num_population) are not attacked: the fine-tuned model's NLL of
each goes to a side file (`population-<shard>`); with score.membership.recall on, each
document's NLL after ReCaLL's prefix of population text goes to another (`recall-<shard>`).
The score stage joins both (memlab/scoring/calibrated.py).

Sample-and-rank (attack.rank.samples > 0; Carlini et al. 2021, memlab/scoring/rank.py): the
shards share the draws out (shard j of S draws those whose index is j modulo S), each from an
empty prompt or a population document's first tokens, and write them with the fine-tuned
model's per-token statistics of the generated tokens to another side file (`rank-<shard>`);
the rank stage adds the base model's NLL (memlab/stages/rank.py).

Each dataset shard gives one generation shard, on actors that load the trained model once
(the trial's own, or the sweep's warm pool: memlab/stages/runner.py); each is written
atomically, so a finished shard is never redone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memlab.components.loaded import LoadedModel
from memlab.components.models import pad
from memlab.components.passes import doc_stats, nll_sums
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    CANARY_SCHEMA,
    GENERATION_SCHEMA,
    POPULATION_SCHEMA,
    RANK_SCHEMA,
    RECALL_SCHEMA,
    is_done,
    read_manifest,
    shard_digests,
    write_shard,
)
from memlab.stages.work import Shards, TrialContext, Work

log = logging.getLogger(__name__)
ENGINE_KEY = "memlab.engine"  # generation shards' metadata: what generated them


def sample_id(doc_id: str, sample_idx: int) -> str:
    """The id that joins one attack sample's rows across every stage's shards."""
    return f"{doc_id}#{sample_idx}"


def sample_seed(seed: int, *parts) -> int:
    """Deterministic seed of one generation draw (recorded with each of its samples)."""
    blob = "/".join(str(x) for x in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:7], "little")


def mean_nll(logp: list[float]) -> float:
    return -sum(logp) / max(1, len(logp))


def nll_window(cfg: StudyConfig, cut: int) -> int:
    """Tokens the document NLL is taken over: its first seq_len, or the whole prompt (`cut`
    tokens) when that is longer (the engine's prefill covers the prompt)."""
    return max(cfg.train.seq_len, cut)


def attack_with_hf(model, tok, docs, cfg: StudyConfig, shard: str):
    """HF `generate`, batched and left-padded; one seed per (shard, batch, sample)."""
    import torch

    a = cfg.attack
    dev = next(model.parameters()).device
    stats = doc_stats(model, tok, [ids[:nll_window(cfg, cut)] for _, ids, cut in docs],
                      a.batch_size)
    eos = tok.eos_token_id
    for b in range(0, len(docs), a.batch_size):
        chunk = docs[b:b + a.batch_size]
        batch = pad(tok, [ids[:cut] for _, ids, cut in chunk], "left")
        inp, mask = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        width = inp.shape[1]
        for s in range(a.samples_per_prompt):
            seed = sample_seed(cfg.seed, shard, b, s)
            torch.manual_seed(seed)
            kw = {"do_sample": False}
            if a.decoding == "sample":
                kw = {"do_sample": True, "temperature": a.temperature,
                      "top_k": a.top_k or None, "top_p": a.top_p}
            with torch.no_grad():
                gen = model.generate(input_ids=inp, attention_mask=mask,
                                     max_new_tokens=a.max_new_tokens, pad_token_id=tok.pad_token_id,
                                     eos_token_id=eos, **kw)
            for j in range(len(chunk)):
                new = gen[j, width:].tolist()
                if eos in new:
                    new = new[:new.index(eos)]
                yield b + j, s, seed, new, stats[b + j]


def attack_with_engine(engine, docs, cfg: StudyConfig, shard: str):
    """memlab's engine: every (document, sample) is one request with its own seed; the prefill
    over the document's first seq_len tokens also gives its NLL."""
    from memlab.engine import Decoding

    a = cfg.attack
    dec = Decoding(greedy=a.decoding == "greedy", temperature=a.temperature, top_k=a.top_k,
                   top_p=a.top_p)
    reqs = [(i, s) for s in range(a.samples_per_prompt) for i in range(len(docs))]
    seeds = [sample_seed(cfg.seed, shard, docs[i][0]["doc_id"], s) for i, s in reqs]
    out = engine.generate([docs[i][1][:docs[i][2]] for i, _ in reqs],
                          tails=[docs[i][1][docs[i][2]:nll_window(cfg, docs[i][2])]
                                 for i, _ in reqs],
                          seeds=seeds, max_new_tokens=a.max_new_tokens, decoding=dec)
    for (i, s), seed, new, lp, z in zip(reqs, seeds, out.tokens, out.token_logp, out.token_z):
        yield i, s, seed, new, (lp, z)


def canary_exposure(model, tok, rows: list[dict], cfg: StudyConfig) -> list[dict]:
    """Exposure of each canary row (memlab/components/canaries.py): the loss (summed NLL of
    the whole sentence, as trained) of the canary and of `attack.canary_alternatives` random
    other secrets in the same sentence; the rank of the canary's among them."""
    from memlab.components import canaries as cn
    from memlab.components.models import doc_tokens

    c, n = cfg.data.canaries, cfg.attack.canary_alternatives
    texts = [t for r in rows for t in (r["text"], *cn.alternatives(c, r["doc_id"], r["text"], n))]
    losses = nll_sums(model, tok, doc_tokens(tok, texts, cfg.train.seq_len) if texts else [],
                      max(cfg.attack.batch_size, 1024))
    out = []
    for i, r in enumerate(rows):
        mine, others = losses[i * (n + 1)], losses[i * (n + 1) + 1:(i + 1) * (n + 1)]
        beaten_by = sum(x < mine for x in others)
        out.append({"doc_id": r["doc_id"], "repeats": r["dup_count"],
                    "space_bits": cn.space_bits(c), "alternatives": n, "beaten_by": beaten_by,
                    "exposure": cn.exposure(beaten_by, n)})
    return out


def canary_path(gen_shard: Path) -> Path:
    """Where the exposure of a dataset shard's canaries goes, beside its generation shard."""
    return gen_shard.with_name("canary-" + gen_shard.name)


def side_path(gen_shard: Path, what: str) -> Path:
    """A side file of a generation shard (`population`, `recall`), beside it."""
    return Path(gen_shard).with_name(f"{what}-{Path(gen_shard).name}")


def windows(tok, rows: list[dict], cfg: StudyConfig) -> list[list[int]]:
    """Each row's first train.seq_len tokens: the window an attacked document's NLL is taken
    over (its reference suffix ends inside it), as the base stage reads it too."""
    from memlab.components.formats import encode

    seq = cfg.train.seq_len
    return [ids[:seq] for ids, _ in encode(tok, rows, seq)] if rows else []


def population_rows(model, tok, rows: list[dict], cfg: StudyConfig) -> list[dict]:
    """The fine-tuned model's mean NLL of each population document's window (RMIA's target
    side of the population; memlab/scoring/calibrated.py)."""
    ids = windows(tok, rows, cfg)
    sums = nll_sums(model, tok, ids, cfg.attack.batch_size)
    return [{"doc_id": r["doc_id"], "nll": s / max(1, len(i) - 1), "tokens": len(i)}
            for r, i, s in zip(rows, ids, sums)]


def recall_rows(model, tok, rows: list[dict], shots: list[dict], cfg: StudyConfig) -> list[dict]:
    """ReCaLL's pass (memlab/scoring/calibrated.py): each document's window read after a
    prefix of the population documents `shots` (each its window, in order), and its mean NLL
    over the same tokens doc_nll averages (all but its first), the prefix not scored."""
    prefix = [t for i in windows(tok, shots, cfg) for t in i]
    ids = windows(tok, rows, cfg)
    conf = getattr(model, "config", None)
    positions = getattr(conf, "max_position_embeddings", None) or getattr(conf, "n_positions",
                                                                          None)
    longest = len(prefix) + max(map(len, ids), default=0)
    if positions and longest > positions:
        raise RuntimeError(f"score.membership.recall: a prefix of {len(prefix)} tokens and a "
                           f"document of up to {cfg.train.seq_len} need {longest} positions, "
                           f"the model has {positions}: lower recall.shots")
    sums = nll_sums(model, tok, [prefix + i for i in ids], cfg.attack.batch_size,
                    skip=len(prefix))
    return [{"doc_id": r["doc_id"], "prefixed_nll": s / max(1, len(i) - 1)}
            for r, i, s in zip(rows, ids, sums)]


def rank_prompts(tok, cfg: StudyConfig, population: list[dict]) -> list[list[int]]:
    """Sample-and-rank's prompts: the empty prompt (`empty_prompt`) with
    attack.rank.prompt_tokens 0, else the first prompt_tokens tokens of each population
    document that has that many."""
    from memlab.components.formats import encode

    n = cfg.attack.rank.prompt_tokens
    if not n:
        return [[empty_prompt(tok)]]
    found = [ids[:n] for ids, _ in encode(tok, population, n) if len(ids) >= n]
    if not found:
        raise RuntimeError(f"attack.rank.prompt_tokens={n}: no population document has {n} "
                           "tokens")
    return found


def empty_prompt(tok) -> int:
    """The one token an empty prompt is: the document separator `<|endoftext|>` where the
    vocabulary has it (what a model saw between documents in pretraining; the fine-tuning
    sequences carry no special token), else BOS, else EOS. Not an instruct model's BOS as such:
    SmolLM2-Instruct's is `<|im_start|>`, a chat turn's opener, whose draws would be chat
    turns rather than free text."""
    sep = tok.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tok.get_vocab() \
        else None
    for token in (sep, tok.bos_token_id, tok.eos_token_id):
        if token is not None:
            return token
    raise RuntimeError("attack.rank.prompt_tokens=0: the tokenizer has no separator, BOS or "
                       "EOS token for an empty prompt")


def rank_rows(model, tok, engine, cfg: StudyConfig, shard: str, draws: list[int],
              prompts: list[list[int]]) -> list[dict]:
    """Sample-and-rank's draws `draws` (their indices), draw i from prompts[i % len(prompts)],
    sampled by the attack's own machinery with its settings (one sample per prompt, always
    sampled); each with the fine-tuned model's teacher-forced log p (and min-k%++ score) of
    its generated tokens and the zlib size of its text."""
    if not draws:
        return []
    rcfg = dataclasses.replace(cfg, attack=dataclasses.replace(
        cfg.attack, samples_per_prompt=1, decoding="sample"))
    docs = [({"doc_id": f"rank{i}"}, prompts[i % len(prompts)],
             len(prompts[i % len(prompts)])) for i in draws]
    drawn = list(attack_with_engine(engine, docs, rcfg, f"rank/{shard}") if engine is not None
                 else attack_with_hf(model, tok, docs, rcfg, f"rank/{shard}"))
    drawn.sort(key=lambda x: x[0])
    ids = [docs[j][1] + new for j, _, _, new, _ in drawn]
    stats = doc_stats(model, tok, ids, cfg.attack.batch_size) if ids else []
    texts = tok.batch_decode([new for *_, new, _ in drawn])
    prompt_texts = tok.batch_decode([docs[j][1] for j, *_ in drawn])
    out = []
    for (j, _, seed, new, _), (lp, z), text, ptext in zip(drawn, stats, texts, prompt_texts):
        cut = len(docs[j][1]) - 1  # (log p of the tokens after the first: the prompt's rest)
        lp, z = lp[cut:], z[cut:]
        out.append({"rank_idx": draws[j], "seed": seed, "prompt_ids": docs[j][1],
                    "gen_ids": new, "prompt_text": ptext, "gen_text": text,
                    "doc_nll": mean_nll(lp) if lp else math.nan, "doc_tokens": len(new),
                    "token_logp": lp, "token_z": z,
                    "doc_zlib_bytes": len(zlib.compress(text.encode()))})
    return out


def generate_rows(model, tok, rows: list[dict], cfg: StudyConfig, shard: str,
                  engine=None, model_lock=None, tok_lock=None) -> list[dict]:
    """The attack on a list of dataset rows: with `engine` (memlab.engine.Engine) if given,
    else HF `generate`. One output row per (document, sample).

    model_lock / tok_lock: held around the model's work (all device work happens there) and
    around the tokenizer's, when other threads share them."""
    from memlab.components.formats import encode
    from memlab.config.formats import prompt_from

    a = cfg.attack
    model_lock = model_lock or contextlib.nullcontext()
    tok_lock = tok_lock or contextlib.nullcontext()
    docs = []  # (row, token ids, prompt length)
    need = max(a.prefix_tokens + a.suffix_tokens, cfg.train.seq_len)
    from_response = prompt_from(cfg) == "response"
    with tok_lock:
        encoded = encode(tok, rows, need) if rows else []
    conf = getattr(model, "config", None)
    positions = getattr(conf, "max_position_embeddings", None) or getattr(conf, "n_positions", None)
    beyond = 0
    for r, (ids, start) in zip(rows, encoded):
        first = start if from_response else 0  # where prefix_tokens are counted from
        if len(ids) - first < a.prefix_tokens + a.suffix_tokens:  # no full reference suffix
            log.warning("doc %s has only %d tokens%s: not attacked", r["doc_id"],
                        len(ids) - first, " of response" if first else "")
            continue
        cut = first + a.prefix_tokens
        if cut + a.suffix_tokens > cfg.train.seq_len or \
                (positions and cut + max(a.max_new_tokens, a.suffix_tokens) > positions):
            # (a long instruction before the response): a member's suffix was never trained
            # on, and the attack may not fit the model; non-members follow the same rule, so
            # the floor is taken on documents like the members'
            beyond += 1
            continue
        docs.append((r, ids, cut))
    if beyond:
        log.warning("%s: %d documents not attacked: their reference suffix ends beyond "
                    "train.seq_len=%d (for members: never trained on) or the attack beyond the "
                    "model's %s positions", shard, beyond, cfg.train.seq_len, positions)
    with model_lock:
        if engine is not None:
            drawn = list(attack_with_engine(engine, docs, cfg, shard))
        else:
            drawn = list(attack_with_hf(model, tok, docs, cfg, shard))
    drawn.sort(key=lambda x: (x[0], x[1]))  # document order, then sample
    suffixes = [docs[i][1][docs[i][2]:docs[i][2] + a.suffix_tokens] for i, *_ in drawn]
    with tok_lock:
        gen_texts = tok.batch_decode([x[3] for x in drawn])
        suffix_texts = tok.batch_decode(suffixes)
        windows = tok.batch_decode([ids[:nll_window(cfg, cut)] for _, ids, cut in docs])
    zlib_bytes = [len(zlib.compress(w.encode())) for w in windows]
    out: list[dict] = []
    for (i, s, seed, new, (logp, z)), suffix, gtext, stext in zip(drawn, suffixes, gen_texts,
                                                                   suffix_texts):
        r, ids, cut = docs[i]
        out.append({
            "sample_id": sample_id(r["doc_id"], s),
            "doc_id": r["doc_id"], "split": r["split"], "dup_count": r["dup_count"],
            "sample_idx": s, "seed": seed, "prompt_ids": ids[:cut],
            "suffix_ids": suffix, "gen_ids": new, "suffix_text": stext, "gen_text": gtext,
            "doc_nll": mean_nll(logp), "doc_tokens": min(len(ids), nll_window(cfg, cut)),
            "token_logp": logp, "token_z": z, "doc_zlib_bytes": zlib_bytes[i],
        })
    return out


def generate_shard(lm: LoadedModel, hold, args: dict, src: str, dst: str) -> int:
    """One dataset shard -> its generation shard (and its canaries' exposure), unless done;
    its rows. `hold`: held around the model's device work (a warm actor's puts the trial's
    weights in the model as it is taken); `lm.tok_lock` around the tokenizer."""
    if not is_done(dst):
        cfg = args["cfg"]
        t0 = time.perf_counter()
        rows = pq.read_table(src).to_pylist()
        t1 = time.perf_counter()
        if canaries := [r for r in rows if r["split"] == "canary"]:
            with hold, lm.tok_lock:  # (it tokenizes: the tokenizer is shared)
                found = canary_exposure(lm.model, lm.tok, canaries, cfg)
            write_shard(pa.Table.from_pylist(found, schema=CANARY_SCHEMA),
                        canary_path(Path(dst)), CANARY_SCHEMA)
            rows = [r for r in rows if r["split"] != "canary"]
        if population := [r for r in rows if r["split"] == "population"]:
            with hold, lm.tok_lock:
                found = population_rows(lm.model, lm.tok, population, cfg)
            write_shard(pa.Table.from_pylist(found, schema=POPULATION_SCHEMA),
                        side_path(dst, "population"), POPULATION_SCHEMA)
            rows = [r for r in rows if r["split"] != "population"]
        if args.get("recall_shots") and rows:
            with hold, lm.tok_lock:
                found = recall_rows(lm.model, lm.tok, rows, args["recall_shots"], cfg)
            write_shard(pa.Table.from_pylist(found, schema=RECALL_SCHEMA),
                        side_path(dst, "recall"), RECALL_SCHEMA)
        if (rank := args.get("rank")) is not None:
            with hold, lm.tok_lock:
                prompts = rank_prompts(lm.tok, cfg, rank["population"])
                found = rank_rows(lm.model, lm.tok, lm.engine, cfg, Path(src).name,
                                  rank["draws"][Path(src).name], prompts)
            write_shard(pa.Table.from_pylist(found, schema=RANK_SCHEMA),
                        side_path(dst, "rank"), RANK_SCHEMA)
        out = generate_rows(lm.model, lm.tok, rows, cfg, Path(src).name, lm.engine, hold,
                            lm.tok_lock)
        wait, held = lm.model_lock.last
        t2 = time.perf_counter()
        table = pa.Table.from_pylist(out, schema=GENERATION_SCHEMA)
        write_shard(table.replace_schema_metadata({ENGINE_KEY: lm.used}), dst,
                    GENERATION_SCHEMA)
        log.info(f"generate {Path(src).name}: {len(out)} rows; read {t1 - t0:.1f} s, attack "
                 f"{t2 - t1:.1f} s (model {held:.1f} s, waited {wait:.1f} s for it), write "
                 f"{time.perf_counter() - t2:.1f} s")
    return pq.read_metadata(dst).num_rows


def _sides(src: Path, dst: Path, recall: bool, rank: bool) -> list[Path]:
    """The side files a generation shard is done with: its canaries' exposure, its population
    documents' NLL, with ReCaLL on its documents' prefixed NLL, with sample-and-rank on its
    share of the draws (every shard has the file, empty where it draws none)."""
    splits = set(pq.read_table(src, columns=["split"]).column("split").to_pylist())
    want = [canary_path(dst)] if "canary" in splits else []
    want += [side_path(dst, "population")] if "population" in splits else []
    want += [side_path(dst, "recall")] if recall and splits & {"member", "nonmember"} else []
    return want + ([side_path(dst, "rank")] if rank else [])


def _before(ctx: TrialContext, jobs: list) -> None:
    """A shard is done with its side files only (written before it; one lost: redone)."""
    recall, rank = bool(_shots(ctx)), ctx.cfg.attack.rank.samples > 0
    for src, dst in jobs:
        if is_done(dst) and not all(p.is_file() for p in _sides(src, dst, recall, rank)):
            dst.unlink()


def _shots(ctx: TrialContext) -> list[dict]:
    """ReCaLL's prefix documents: the first score.membership.recall.shots of the population
    split, in dataset order (none: ReCaLL off)."""
    m = ctx.cfg.score.membership
    if not (m.enabled and m.recall.enabled):
        return []
    from memlab.components.data import read_dataset

    rows = [r for r in read_dataset(ctx.dir("data")) if r["split"] == "population"]
    return rows[:m.recall.shots]


def _rank(ctx: TrialContext) -> dict | None:
    """Sample-and-rank's work (None: off): which draws each dataset shard makes (draw i: the
    shard i modulo their number, in name order) and the population documents it may prompt
    with (none for empty prompts)."""
    r = ctx.cfg.attack.rank
    if not r.samples:
        return None
    from memlab.components.data import read_dataset

    names = sorted(p.name for p in ctx.dir("data").glob("part-*.parquet"))
    population = [x for x in read_dataset(ctx.dir("data")) if x["split"] == "population"] \
        if r.prompt_tokens else []
    return {"draws": {n: list(range(j, r.samples, len(names))) for j, n in enumerate(names)},
            "population": population}


def _args(ctx: TrialContext) -> dict:
    return {"cfg": ctx.cfg, "train_dir": str(ctx.dir("train")), "threads": ctx.threads,
            **({"recall_shots": shots} if (shots := _shots(ctx)) else {}),
            **({"rank": rank} if (rank := _rank(ctx)) is not None else {})}


def _finish(ctx: TrialContext, folder: Path, jobs: list, rows: int, nodes: set) -> dict:
    cfg, data_dir = ctx.cfg, ctx.dir("data")
    digests = shard_digests(folder)
    sides = sorted(p.name for what in ("canary", "population", "recall", "rank")
                   for p in folder.glob(f"{what}-*.parquet"))
    made = read_manifest(data_dir) or {}
    data_rows = sum(pq.read_metadata(s).num_rows for s, _ in jobs) - \
        made.get("canaries", 0) - made.get("population", 0)
    engines = {(pq.read_schema(d).metadata or {}).get(ENGINE_KEY.encode(), b"unrecorded")
               for _, d in jobs}
    return dict(outputs=list(digests) + sides, shard_sha256=digests, shards=len(jobs),
                rows=rows, actor_nodes=sorted(nodes), decoding=cfg.attack.decoding,
                docs_too_short=data_rows - rows // cfg.attack.samples_per_prompt,
                samples_per_prompt=cfg.attack.samples_per_prompt,
                engines=sorted(e.decode() for e in engines))


WORK = Work(
    shards=Shards(
        source="data", desc="generate",
        args=_args,
        load=lambda args: LoadedModel.trained(args["cfg"], args["train_dir"],
                                              args["threads"]),
        run=generate_shard,
        weights=lambda args: args["train_dir"],
        before=_before,
        # with a GPU an actor takes 2 shards at once, each in its own thread: one has the
        # model (the GPU) while the other reads, tokenizes, detokenizes and writes its own
        calls=2),
    finish=_finish,
)

"""Generate stage: the extraction attack, over Parquet shards with Ray Data.

For every document of the dataset (members and non-members) the prompt is its first
`prefix_tokens` tokens and the reference suffix the next `suffix_tokens` (text, papers); for
instruction and chat records (memlab/components/formats.py) the prompt is everything before the
response plus the response's first `prefix_tokens` tokens, the suffix the response's next
`suffix_tokens` (`attack.prompt_from: start` counts from the document start instead). The
fine-tuned model samples `samples_per_prompt` continuations of `max_new_tokens` tokens. The
same pass records the document's mean next-token NLL over its first `train.seq_len` tokens (or
its whole prompt, when longer), for held-out perplexity and membership signals.

Ray Data runs one task per dataset shard on an actor pool (one model load per actor); each
actor writes its generation shard atomically, so a finished shard is never redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from memlab.components.models import pad
from memlab.config.keys import content_key
from memlab.config.schema import StudyConfig
from memlab.io.shards import (
    CANARY_SCHEMA,
    GENERATION_SCHEMA,
    StageOutput,
    claim_stage,
    is_done,
    manifest_digest,
    read_manifest,
    shard_digests,
    write_manifest,
    write_shard,
)

log = logging.getLogger(__name__)
ENGINE_KEY = "memlab.engine"  # generation shards' metadata: what generated them


def sample_id(doc_id: str, sample_idx: int) -> str:
    """The id that joins one attack sample's rows across every stage's shards."""
    return f"{doc_id}#{sample_idx}"


def sample_seed(seed: int, *parts) -> int:
    """Deterministic seed of one generation draw (recorded with each of its samples)."""
    blob = "/".join(str(x) for x in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:7], "little")


def use_engine(cfg: StudyConfig, device: str) -> bool:
    """memlab's engine on GPU, HF `generate` on CPU, unless attack.engine says otherwise."""
    return cfg.attack.engine in ("memlab", "memlab-exact") or \
        (cfg.attack.engine == "auto" and device == "cuda")


def fit_threads(cpus: float) -> None:
    """Keep an actor's compile processes within the CPUs Ray reserved for it.

    Left alone, inductor starts a compile pool of one process per core of the node (each
    importing torch and triton) in every actor: two generation actors on a 16-core GPU node
    start 34 processes while they warm up. A setting already in the environment wins. (The
    Rust tokenizer's threads are left alone: capped at 4 per actor, the generation stage's
    steady throughput fell from 0.97 to 0.92 of the bare engine's, bench/results.)"""
    if "TORCHINDUCTOR_COMPILE_THREADS" not in os.environ:
        n = max(1, int(cpus))
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(n)
        if (ic := sys.modules.get("torch._inductor.config")) is not None:
            ic.compile_threads = n  # read from the environment when first imported


LOGIT_ELEMS = 1 << 27
"""Logits (rows x tokens x vocabulary) one teacher-forced forward may hold: a batch of long
documents is split into forwards of fewer rows (a 512 x 512-token batch of a 49k-vocabulary
model would otherwise need ~50 GB of float32 logits)."""


def _forwards(model, tok, token_lists: list[list[int]], batch_size: int):
    """(float32 logits of every position but the last, token ids, attention mask) of each
    right-padded forward over `token_lists`, in order, each within LOGIT_ELEMS."""
    import torch

    dev = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    width = max(map(len, token_lists), default=1)
    rows = max(1, min(batch_size, LOGIT_ELEMS // (width * vocab)))
    for i in range(0, len(token_lists), rows):
        batch = pad(tok, token_lists[i:i + rows], "right")
        ids, mask = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        with torch.no_grad():
            yield model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), ids, mask


def doc_stats(model, tok, token_lists: list[list[int]],
              batch_size: int) -> list[tuple[list[float], list[float]]]:
    """Of each token list, teacher-forced (no grad): log p of each of its tokens after the
    first, and min-k%++'s normalised score of each (memlab.engine.engine.token_stats)."""
    from memlab.engine.engine import token_stats

    out = []
    lengths = iter(map(len, token_lists))
    for logits, ids, _ in _forwards(model, tok, token_lists, batch_size):
        lp, z = token_stats(logits, ids[:, 1:])
        for a, b in zip(lp.tolist(), z.tolist()):
            n = next(lengths) - 1
            out.append((a[:n], b[:n]))
    return out


def nll_sums(model, tok, token_lists: list[list[int]], batch_size: int) -> list[float]:
    """Of each token list, teacher-forced (no grad): the summed NLL of its tokens after the
    first (reduced on the device: no per-token numbers leave it)."""
    from memlab.engine.engine import next_token_nll

    out: list[float] = []
    for logits, ids, mask in _forwards(model, tok, token_lists, batch_size):
        out += (next_token_nll(logits, ids[:, 1:]) * mask[:, 1:]).sum(1).tolist()
    return out


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


class TimedLock:
    """A lock that records, per thread, how long its holder waited for it and held it."""

    def __init__(self):
        self._lock, self._mine = threading.Lock(), threading.local()

    def __enter__(self):
        t = time.perf_counter()
        self._lock.acquire()
        self._mine.t = time.perf_counter()
        self._mine.wait = self._mine.t - t
        return self

    def __exit__(self, *exc):
        self._mine.held = time.perf_counter() - self._mine.t
        self._lock.release()

    @property
    def last(self) -> tuple[float, float]:
        """(waited, held) seconds of this thread's last hold."""
        return getattr(self._mine, "wait", 0.0), getattr(self._mine, "held", 0.0)


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


class GenerateShards:
    """Ray Data actor: loads the trained model once, then turns dataset shards into
    generation shards (skipping any that already exist).

    With a GPU it takes `CALLS` shards at once, each in its own thread: one has the model (the
    GPU) while the others read, tokenize, detokenize and write theirs, so the device does not
    wait for the host between shards."""

    CALLS = 2

    def __init__(self, cfg: StudyConfig, train_dir: str, threads: int):
        from memlab.components.models import load_trained

        t0 = self._setup(cfg, threads)
        self.model, self.tok = load_trained(train_dir, self.dtype)
        self._start(t0, "model load")

    def _setup(self, cfg: StudyConfig, threads: int) -> float:
        """Threads, device and dtype of the actor (before its model loads)."""
        t0 = time.perf_counter()
        self.cfg = cfg
        fit_threads(cfg.attack.actor_cpus)
        import torch

        from memlab.components.models import torch_dtype

        torch.set_num_threads(max(1, threads))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = torch_dtype(cfg.train.precision, self.device)
        return t0

    def _start(self, t0: float, what: str) -> None:
        """The loaded model to the device, its engine, the locks."""
        self.model.to(self.device)
        self.engine = None
        if use_engine(self.cfg, self.device):
            from memlab.engine import Engine

            self.engine = Engine(self.model, max_batch=self.cfg.attack.batch_size,
                                 exact=self.cfg.attack.engine == "memlab-exact",
                                 eos_token_id=self.tok.eos_token_id,
                                 pad_token_id=self.tok.pad_token_id)
        e = self.engine
        # recorded in every shard it writes (and so in the stage's manifest)
        self.used = ("hf" if e is None else "memlab-exact" if e.dec.exact else
                     f"memlab ({e.decode_kernel} decode{', compiled' if e.compile else ''})") + \
            f" on {self.device}, {str(self.dtype).removeprefix('torch.')}"
        self.model_lock, self.tok_lock = TimedLock(), threading.Lock()
        print(f"[memlab] generate actor ready in {time.perf_counter() - t0:.1f} s (imports, "
              f"{what}; {self.used})", file=sys.stderr, flush=True)

    def __call__(self, batch: dict) -> dict:
        rows = [self.shard(self.cfg, src, dst, self.model_lock)
                for src, dst in zip(batch["src"], batch["dst"])]
        return {"dst": list(batch["dst"]), "rows": rows}

    def shard(self, cfg: StudyConfig, src: str, dst: str, model_lock) -> int:
        """One dataset shard -> its generation shard (and its canaries' exposure), unless
        done; its rows. `model_lock`: held around the model's work (a warm actor's puts the
        trial's weights in the model as it is taken)."""
        if not is_done(dst):
            t0 = time.perf_counter()
            rows = pq.read_table(src).to_pylist()
            t1 = time.perf_counter()
            if canaries := [r for r in rows if r["split"] == "canary"]:
                with model_lock, self.tok_lock:  # (it tokenizes: the tokenizer is shared)
                    found = canary_exposure(self.model, self.tok, canaries, cfg)
                write_shard(pa.Table.from_pylist(found, schema=CANARY_SCHEMA),
                            canary_path(Path(dst)), CANARY_SCHEMA)
                rows = [r for r in rows if r["split"] != "canary"]
            out = generate_rows(self.model, self.tok, rows, cfg, Path(src).name,
                                self.engine, model_lock, self.tok_lock)
            wait, held = self.model_lock.last
            t2 = time.perf_counter()
            table = pa.Table.from_pylist(out, schema=GENERATION_SCHEMA)
            write_shard(table.replace_schema_metadata({ENGINE_KEY: self.used}), dst,
                        GENERATION_SCHEMA)
            print(f"[memlab] generate {Path(src).name}: {len(out)} rows; read {t1 - t0:.1f} s,"
                  f" attack {t2 - t1:.1f} s (model {held:.1f} s, waited {wait:.1f} s for "
                  f"it), write {time.perf_counter() - t2:.1f} s", file=sys.stderr, flush=True)
        return pq.read_metadata(dst).num_rows


def gen_upstream(train_dir: Path, data_dir: Path) -> str:
    """What a finished generation stage was built from: the trained model and the dataset."""
    return content_key({"train": manifest_digest(train_dir), "data": manifest_digest(data_dir)})


def run_generate(cfg: StudyConfig, train_dir: Path, data_dir: Path, out_dir: Path,
                 threads: int = 1, pool=None) -> StageOutput:
    """The attack on every document of the dataset with the trained model of `train_dir`;
    on `pool`'s warm actors (memlab/stages/warm.py) if given, else on Ray Data actors of
    this trial's own."""
    from memlab.stages.pool import run_shard_pool, shard_jobs

    upstream = gen_upstream(train_dir, data_dir)
    with claim_stage(out_dir, upstream) as stage:
        if stage.done is None:
            jobs, nodes = shard_jobs(data_dir, out_dir), set()
            for src, dst in jobs:  # a shard of canaries is done with its exposure file only
                if is_done(dst) and not canary_path(dst).is_file() and "canary" in \
                        pq.read_table(src, columns=["split"]).column("split").to_pylist():
                    dst.unlink()
            if pool is not None:
                rows = pool.map("generate", jobs, "generate", cfg, str(train_dir), nodes=nodes)
            else:
                rows = run_shard_pool(GenerateShards, {"cfg": cfg, "train_dir": str(train_dir),
                                                       "threads": threads}, jobs, cfg, "generate",
                                      nodes)
            digests = shard_digests(out_dir)
            canaries = sorted(p.name for p in out_dir.glob("canary-*.parquet"))
            data_rows = sum(pq.read_metadata(s).num_rows for s, _ in jobs) - \
                (read_manifest(data_dir) or {}).get("canaries", 0)
            engines = {(pq.read_schema(d).metadata or {}).get(ENGINE_KEY.encode(), b"unrecorded")
                       for _, d in jobs}
            write_manifest(out_dir, upstream=upstream, outputs=list(digests) + canaries,
                           shard_sha256=digests, shards=len(jobs), rows=rows,
                           actor_nodes=sorted(nodes),
                           decoding=cfg.attack.decoding,
                           docs_too_short=data_rows - rows // cfg.attack.samples_per_prompt,
                           samples_per_prompt=cfg.attack.samples_per_prompt,
                           engines=sorted(e.decode() for e in engines))
        return stage.output()

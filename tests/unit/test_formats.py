"""Dataset formats (memlab/components/formats.py): how records are read and rendered, where
the attack's prompt / reference suffix split falls for each format, and which tokens carry the
loss with train.loss_on=response."""

import json
import sys
import types

import pyarrow.parquet as pq
import pytest
import torch

from memlab.components.data import DataError, load_documents, read_dataset
from memlab.components.formats import plain_chat, render_template
from memlab.components.models import load_causal_lm, prepare_base_model
from memlab.config.formats import problems
from memlab.config.schema import DataSection, StudyConfig
from memlab.io.shards import FORMATTED_DATASET_SCHEMA
from memlab.stages.data import build_dataset
from memlab.stages.generate import generate_rows
from memlab.stages.train import _batches
from tests.conftest import ROOT, stage
from tests.unit.test_engine import assert_same_row

FIXTURES = ROOT / "tests" / "fixtures"
INSTRUCTION = "If you are a doctor, please answer the medical questions based on the patient's " \
              "description."
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


# ----------------------------------------------------------------------------- rendering
def test_instruction_template_and_an_empty_input():
    t = DataSection().template
    vals = {"instruction": "Answer.", "input": "My head hurts.", "output": "Rest."}
    text, start = render_template(t, vals)
    assert (text[:start], text[start:]) == ("Answer.\nMy head hurts.\n\n### Response:\n", "Rest.")
    vals["input"] = ""  # no dangling blank line where the input was
    text, start = render_template(t, vals)
    assert (text[:start], text[start:]) == ("Answer.\n\n### Response:\n", "Rest.")
    alpaca = "### Instruction:\n{instruction}\n\n{input}\n\n### Response:\n{output}"
    text, start = render_template(alpaca, vals)
    assert text == "### Instruction:\nAnswer.\n\n### Response:\nRest." and text[start:] == "Rest."
    text, start = render_template("{input}\n\n{instruction} {{literal}}\n{output}", vals)
    assert text == "Answer. {literal}\nRest." and text[:start] == "Answer. {literal}\n"


def test_plain_chat_layout():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello."}]
    text, start = plain_chat(msgs)
    assert text == "### System:\nBe brief.\n\n### User:\nHi?\n\n### Assistant:\nHello."
    assert text[start:] == "Hello."


def test_fixtures_read_in_their_formats():
    doctor = load_documents(DataSection(source="local", format="instruction",
                                        path=str(FIXTURES / "chatdoctor.jsonl")))
    assert len(doctor) == 18
    first = doctor[0]
    assert first["text"].startswith(INSTRUCTION + "\nHi doctor, I am 34")
    assert first["text"][first["response_start"]:].startswith("Hi, thanks for your query.")
    assert first["text"][:first["response_start"]].endswith("long hours. No fever. What could "
                                                            "it be?\n\n### Response:\n")
    last = doctor[-1]  # empty input: the question is the instruction, no blank line for it
    assert last["text"].startswith("What are the common side effects of starting metformin "
                                   "tablets for type 2 diabetes and how can they be reduced?"
                                   "\n\n### Response:\nHi, metformin")
    papers = load_documents(DataSection(source="local", format="papers", columns={"id": "id"},
                                        path=str(FIXTURES / "arxiver.jsonl")))
    assert papers[0]["doc_id"] == "2403.01117" and papers[0]["response_start"] == 0
    assert papers[0]["text"].startswith("Sparse Gating for Low-Latency Mixture-of-Experts "
                                        "Inference on Edge Devices\n\nMixture-of-experts")
    full = load_documents(DataSection(source="local", format="papers", paper_body="markdown",
                                      path=str(FIXTURES / "arxiver.jsonl")))
    assert full[0]["text"].startswith("# Sparse Gating")  # the title is not given twice
    assert full[0]["text"].count("Sparse Gating for Low-Latency") == 1
    assert full[0]["doc_id"] == "arxiver.jsonl#0"  # no id mapped: the row
    chats = load_documents(DataSection(source="local", format="chat",
                                       columns={"id": "conversation_id"},
                                       path=str(FIXTURES / "chat.jsonl")))
    assert [c["doc_id"] for c in chats] == [f"chat-{i:03d}" for i in range(18)]
    garden = chats[-1]  # the trailing user turn ("Thanks!") comes after the response: dropped
    assert [m["role"] for m in json.loads(garden["messages"])] == ["user", "assistant"]
    assert garden["text"][garden["response_start"]:].startswith("Clear away diseased plants")
    assert not garden["text"].endswith("Thanks!")


def test_column_mapping_and_errors_name_file_row_field_and_setting(tmp_path):
    f = tmp_path / "qa.jsonl"
    rows = [{"q": f"question {i} " + "why " * 5, "a": f"answer {i} " + "because " * 5,
             "key": f"k{i}"} for i in range(3)]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    sec = DataSection(source="local", path=str(f), format="instruction",
                      columns={"instruction": "q", "output": "a", "id": "key"})
    docs = load_documents(sec)
    assert [d["doc_id"] for d in docs] == ["k0", "k1", "k2"]
    assert docs[0]["text"].startswith("question 0 why")  # no input column, unmapped: empty
    assert docs[0]["text"][docs[0]["response_start"]:].startswith("answer 0 because")
    sec.columns = {"instruction": "q", "output": "answer"}
    with pytest.raises(DataError, match=r"qa.jsonl:1 has no field 'answer' "
                                        r"\(data.columns.output\)"):
        load_documents(sec)
    sec.columns = {"instruction": "q"}  # output unmapped, read from 'output': not there
    with pytest.raises(DataError, match=r"qa.jsonl:1 has no field 'output' \(canonical field "
                                        r"'output' of data.format instruction.*data.columns"):
        load_documents(sec)
    sec.columns = {"instruction": "q", "output": "a", "input": "context"}  # mapped: required
    with pytest.raises(DataError, match="no field 'context' \\(data.columns.input\\)"):
        load_documents(sec)
    with pytest.raises(DataError, match="a .txt file is one plain document"):
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "a.txt").write_text("words " * 10)
        load_documents(DataSection(source="local", path=str(tmp_path / "d"), format="papers"))
    bad = tmp_path / "chat.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "text": "hi"}]}) + "\n")
    with pytest.raises(DataError, match="chat.jsonl:1: message 0 is not a"):
        load_documents(DataSection(source="local", path=str(bad), format="chat"))
    # the old settings are the canonical fields' columns too
    f.write_text(json.dumps({"body": "some words here", "key": "x"}) + "\n")
    docs = load_documents(DataSection(source="local", path=str(f), text_field="body",
                                      id_field="key"))
    assert docs[0]["doc_id"] == "x"


def test_hf_source_takes_config_split_and_column_mapping(monkeypatch):
    calls = []

    class Fake:
        column_names = ["question", "answer", "uid"]

        def __init__(self, rows):
            self.rows = rows

        def select_columns(self, cols):
            return Fake([{c: r[c] for c in cols} for r in self.rows])

        def to_list(self):
            return self.rows

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return Fake([{"question": "Q?", "answer": "A.", "uid": "u1"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    sec = DataSection(source="hf", hf_name="org/qa", hf_config="en", hf_split="train[:2000]",
                      format="instruction",
                      columns={"instruction": "question", "output": "answer", "id": "uid"})
    docs = load_documents(sec)
    assert calls == [("org/qa", "en", "train[:2000]")]
    assert docs == [{"doc_id": "u1", "text": "Q?\n\n### Response:\nA.", "response_start": 18,
                     "messages": None}]
    sec.columns = {"instruction": "prompt", "output": "answer"}
    with pytest.raises(DataError, match=r"hub dataset org/qa \(en\), split train\[:2000\]: "
                                        r"record 1 \(index 0\) has no field 'prompt' "
                                        r"\(data.columns.instruction\) "
                                        r"\(its columns: question, answer, uid\)"):
        load_documents(sec)


@pytest.mark.parametrize("settings, key, message", [
    ({"format": "instruction", "columns": {"title": "t"}}, "data.columns.title",
     "not a field of data.format instruction"),
    ({"format": "instruction", "template": "{instruction}\n{input}"}, "data.template",
     "{output} exactly once"),
    ({"format": "instruction", "template": "{question}: {output}"}, "data.template",
     "unknown field"),
    ({"format": "instruction", "template": "{output"}, "data.template", "not a valid format"),
    ({"format": "instruction", "template": "{instruction}\n{output!r}"}, "data.template",
     "no conversion or format spec"),
    ({"source": "demo", "format": "chat"}, "data.format", "needs records from"),
    ({"source": "hf", "hf_name": "x", "hf_split": "train[:20"}, "data.hf_split",
     "not a split"),
    ({"text_field": "body", "columns": {"text": "content"}}, "data.columns.text",
     "set one of them"),
])
def test_format_settings_are_validated(settings, key, message):
    cfg = StudyConfig()
    cfg.data.source = "local"
    for k, v in settings.items():
        setattr(cfg.data, k, v)
    found = problems(cfg)
    assert any(k == key and message in m for k, m in found), found


def test_hf_split_syntax_accepts_slices():
    cfg = StudyConfig()
    cfg.data.source, cfg.data.hf_name = "hf", "x"
    for split in ("train", "train[:2000]", "train[10%:20%]", "validation[-100:]",
                  "train[:500]+test[:500]", "train+validation"):
        cfg.data.hf_split = split
        assert problems(cfg) == [], split


def test_validate_reports_format_problems(tmp_path):
    from memlab.config.expand import load_study
    from memlab.config.load import ConfigError

    (tmp_path / "s.yaml").write_text(
        "data: {source: local, path: %s, format: instruction, columns: {question: q}}\n"
        % (FIXTURES / "chatdoctor.jsonl"))
    with pytest.raises(ConfigError, match="data.columns.question: not a field of data.format"):
        load_study(tmp_path / "s.yaml")


# ----------------------------------------------------------------------------- the split
def _dataset(tmp_path, fmt: str, path: str, **data):
    cfg = StudyConfig()
    cfg.data.source, cfg.data.path = "local", str(FIXTURES / path)
    cfg.data.format = fmt
    cfg.data.num_docs, cfg.data.num_members, cfg.data.num_nonmembers = 60, 4, 4
    for k, v in data.items():
        setattr(cfg.data, k, v)
    cfg.model.source, cfg.model.cache_dir = "tiny", str(tmp_path / "cache")
    cfg.train.seq_len, cfg.train.batch_size = 176, 2
    cfg.attack.prefix_tokens = cfg.attack.suffix_tokens = cfg.attack.max_new_tokens = 16
    data_dir = tmp_path / f"data-{fmt}"
    build_dataset(cfg.data, data_dir)
    rows = read_dataset(data_dir)
    base = prepare_base_model(cfg.model, [r["text"] for r in rows])["path"]
    from memlab.components.models import load_tokenizer

    return cfg, rows, base, load_tokenizer(base), data_dir


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _attack(cfg, rows, base, tok):
    model = load_causal_lm(base, torch.float32).eval()
    return {g["doc_id"]: g for g in generate_rows(model, tok, rows, cfg, "part-00000")}


@pytest.mark.parametrize("fmt, path, data", [
    ("text", "arxiver.jsonl", {"text_field": "abstract"}),
    ("papers", "arxiver.jsonl", {"columns": {"id": "id"}}),
])
def test_text_and_papers_split_at_the_document_start(tmp_path, fmt, path, data):
    cfg, rows, base, tok, _ = _dataset(tmp_path, fmt, path, **data)
    gens = _attack(cfg, rows, base, tok)
    assert len(gens) == len(rows)
    for r in rows:
        g, ids = gens[r["doc_id"]], _ids(tok, r["text"])
        assert g["prompt_ids"] == ids[:16] and g["suffix_ids"] == ids[16:32]
        # prompt: the document's first 16 tokens; reference suffix: the next 16
        assert r["text"].startswith(tok.decode(ids[:16]) + g["suffix_text"])
        if fmt == "papers":  # from the title on
            assert tok.decode(g["prompt_ids"]).startswith(r["text"].split("\n")[0][:12])
        assert g["doc_tokens"] == min(len(ids), cfg.train.seq_len)


def _check_response_split(row, g, tok, head: str, response: str):
    """prompt = everything before the response + its first 16 tokens; suffix = the
    response's next 16 tokens."""
    h, r = _ids(tok, head), _ids(tok, response)
    assert g["prompt_ids"] == h + r[:16]
    assert g["suffix_ids"] == r[16:32]
    assert tok.decode(g["prompt_ids"]) == head + tok.decode(r[:16])
    assert response.startswith(tok.decode(r[:16]) + g["suffix_text"])


def test_instruction_prompt_is_everything_before_the_response_plus_its_start(tmp_path):
    cfg, rows, base, tok, data_dir = _dataset(tmp_path, "instruction", "chatdoctor.jsonl")
    shard = pq.read_schema(data_dir / "part-00000.parquet").remove_metadata()
    assert shard == FORMATTED_DATASET_SCHEMA  # the response offsets are in the shards
    gens = _attack(cfg, rows, base, tok)
    for row in rows:
        text, start = row["text"], row["response_start"]
        assert text[:start].endswith("\n\n### Response:\n")
        assert text[:start].startswith(INSTRUCTION) or "metformin" in text
        _check_response_split(row, gens[row["doc_id"]], tok, text[:start], text[start:])
    # attack.prompt_from=start: the first 16 tokens of the document, the instruction's
    cfg.attack.prompt_from = "start"
    row = next(r for r in rows if r["text"].startswith(INSTRUCTION))
    g = _attack(cfg, [row], base, tok)[row["doc_id"]]
    assert g["prompt_ids"] == _ids(tok, row["text"][:row["response_start"]])[:16]
    assert INSTRUCTION.startswith(tok.decode(g["prompt_ids"]))


def test_documents_whose_suffix_was_never_trained_on_are_not_attacked(tmp_path):
    """seq_len 48 ends inside every record's instruction: no member's reference suffix was
    trained on, so no document (member or not: the floor follows the members' rule) is
    attacked, and nothing is sent to the model past what it was trained on."""
    cfg, rows, base, tok, _ = _dataset(tmp_path, "instruction", "chatdoctor.jsonl")
    cfg.train.seq_len = 48
    model = load_causal_lm(base, torch.float32).eval()
    assert generate_rows(model, tok, rows, cfg, "part-00000") == []


@pytest.mark.parametrize("seq_len", [176])
def test_engine_and_hf_agree_on_response_prompts(tmp_path, seq_len):
    """memlab's engine (the GPU path, here on CPU) takes prompts of every length the response
    split makes, and the same NLL window (seq_len)."""
    from memlab.engine import Engine

    cfg, rows, base, tok, _ = _dataset(tmp_path, "instruction", "chatdoctor.jsonl")
    cfg.train.seq_len = seq_len
    model = load_causal_lm(base, torch.float32).eval()
    hf = generate_rows(model, tok, rows, cfg, "part-00000")
    eng = Engine(model, max_batch=8, eos_token_id=tok.eos_token_id,
                 pad_token_id=tok.pad_token_id)
    mine = generate_rows(model, tok, rows, cfg, "part-00000", eng)
    assert len({len(h["prompt_ids"]) for h in hf}) > 1
    for h, e in zip(hf, mine, strict=True):
        assert_same_row(h, e, "seed")
        assert h["doc_tokens"] == max(seq_len, len(h["prompt_ids"]))


def test_chat_prompt_is_the_conversation_before_the_last_assistant_turn(tmp_path):
    cfg, rows, base, tok, _ = _dataset(tmp_path, "chat", "chat.jsonl",
                                       columns={"id": "conversation_id"})
    assert not tok.chat_template  # the tiny model has none: memlab's plain layout
    cfg.train.seq_len = 400  # every conversation's reference suffix is trained on
    gens = _attack(cfg, rows, base, tok)
    for row in rows:
        msgs = json.loads(row["messages"])
        text, start = row["text"], row["response_start"]
        assert text[:start].endswith("### Assistant:\n") and text[start:] == msgs[-1]["content"]
        _check_response_split(row, gens[row["doc_id"]], tok, text[:start], text[start:])
    # a tokenizer with a chat template renders the conversation with it, at attack time
    tok.chat_template = TEMPLATE
    gens = _attack(cfg, rows, base, tok)
    for row in rows:
        msgs = json.loads(row["messages"])
        head = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                       for m in msgs[:-1]) + "<|im_start|>assistant\n"
        _check_response_split(row, gens[row["doc_id"]], tok, head,
                              msgs[-1]["content"] + "<|im_end|>\n")


# ----------------------------------------------------------------------------- the loss
def _labels(cfg, tok, row):
    ids, mask, labels, empty = next(_batches([row], tok, cfg))
    return ids[0], labels[0], empty


@pytest.mark.parametrize("fmt, path, data", [
    ("instruction", "chatdoctor.jsonl", {}),
    ("chat", "chat.jsonl", {"columns": {"id": "conversation_id"}}),
])
def test_response_only_loss_is_on_the_response_tokens(tmp_path, fmt, path, data):
    cfg, rows, base, tok, _ = _dataset(tmp_path, fmt, path, **data)
    cfg.train.batch_size, cfg.train.seq_len = 1, 1024
    row = rows[0]
    text, start = row["text"], row["response_start"]
    cfg.train.loss_on = "response"
    ids, labels, empty = _labels(cfg, tok, row)
    assert not empty
    carried = (labels != -100).nonzero().flatten().tolist()
    n_head = len(_ids(tok, text[:start]))
    assert carried == list(range(n_head, len(ids)))  # exactly the response's tokens
    assert torch.equal(labels[n_head:], ids[n_head:])
    assert tok.decode(ids[carried]) == text[start:]
    assert tok.decode(ids[:n_head]) == text[:start]
    cfg.train.loss_on = "all"
    ids, labels, _ = _labels(cfg, tok, row)
    assert torch.equal(labels, ids)
    if fmt == "chat":  # with a chat template: the last assistant turn and its end marker
        tok.chat_template = TEMPLATE
        cfg.train.loss_on = "response"
        ids, labels, _ = _labels(cfg, tok, row)
        content = json.loads(row["messages"])[-1]["content"]
        assert tok.decode(ids[labels != -100]) == content + "<|im_end|>\n"
        assert tok.decode(ids[labels == -100]).endswith("<|im_start|>assistant\n")


def test_response_loss_on_text_is_the_whole_document(tmp_path):
    cfg, rows, base, tok, _ = _dataset(tmp_path, "text", "chatdoctor.jsonl",
                                       columns={"text": "output"})
    cfg.train.batch_size, cfg.train.loss_on = 1, "response"
    ids, labels, empty = _labels(cfg, tok, rows[0])
    assert not empty and torch.equal(labels, ids)


@pytest.mark.parametrize("strategy", ["full", "head"])
def test_response_only_training_runs_and_a_cut_response_trains_nothing(tmp_path, strategy):
    """full (DeepSpeed) and head train with loss_on=response; with seq_len shorter than every
    prompt no token carries loss: the steps say so and no weight moves."""
    cfg, rows, base, tok, data = _dataset(tmp_path, "instruction", "chatdoctor.jsonl")
    cfg.train.strategy, cfg.train.loss_on = strategy, "response"
    cfg.train.full.lr = cfg.train.head.lr = 1e-2
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "train").manifest
    assert man["steps_without_loss_tokens"] == 0 and man["members_response_beyond_seq_len"] == 0
    assert man["final_loss"] == man["final_loss"]  # finite
    cfg.train.seq_len = 48
    man = stage("train", cfg, base=base, data=data, train=tmp_path / "cut").manifest
    assert man["members_response_beyond_seq_len"] == 4
    assert man["steps_without_loss_tokens"] == man["train_steps"] == 2
    from memlab.components.models import load_trained

    after, _ = load_trained(tmp_path / "cut")
    before = load_causal_lm(base).state_dict()
    assert all(torch.equal(before[k], v) for k, v in after.state_dict().items() if k in before)


# ----------------------------------------------------------------------------- edge records
def _records(rows, **data):
    from memlab.components.formats import records

    docs, _ = records(rows, DataSection(**data), where=lambda i: f"row {i}", default_id=str)
    return docs


def test_instruction_reads_only_the_fields_its_template_names():
    docs = _records([{"input": "My knee hurts.", "output": "Ice it."}], format="instruction",
                    template="Q: {input}\n### Response:\n{output}")
    assert docs[0]["text"] == "Q: My knee hurts.\n### Response:\nIce it."
    with pytest.raises(Exception, match="has no field 'output'"):
        _records([{"input": "My knee hurts."}], format="instruction",
                 template="Q: {input}\n### Response:\n{output}")


def test_a_papers_title_is_dropped_only_when_a_markdown_body_opens_with_it():
    row = {"title": "Attention", "abstract": "Attention is what we study.",
           "markdown": "# Attention\n\nAttention is what we study."}
    assert _records([row], format="papers")[0]["text"] == \
        "Attention\n\nAttention is what we study."
    assert _records([row], format="papers", paper_body="markdown")[0]["text"] == \
        "# Attention\n\nAttention is what we study."


def test_a_null_text_is_empty_not_the_word_none():
    assert _records([{"text": None}])[0]["text"] == ""


def test_a_literal_output_in_braces_is_refused():
    cfg = StudyConfig()
    cfg.data.source, cfg.data.format = "local", "instruction"
    cfg.data.template = "{instruction}\n{{output}}\n{output}"
    assert any(k == "data.template" for k, _ in problems(cfg))


def test_a_chat_template_that_refuses_a_conversation_names_it():
    from memlab.components.formats import FormatError, chat_parts

    class Tok:
        def apply_chat_template(self, messages, **kw):
            raise RuntimeError("System role not supported")

    with pytest.raises(FormatError, match="refuses this conversation: System role"):
        chat_parts(Tok(), [{"role": "system", "content": "x"},
                           {"role": "assistant", "content": "y"}])


def test_chat_templates_get_a_fixed_date():
    from memlab.components.formats import CHAT_DATE, chat_parts

    seen = []

    class Tok:
        def apply_chat_template(self, messages, add_generation_prompt=False, **kw):
            seen.append(kw["date_string"])
            text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
            return text + ("<assistant>" if add_generation_prompt else "")

    prompt, response = chat_parts(Tok(), [{"role": "user", "content": "Hi"},
                                          {"role": "assistant", "content": "Hello"}])
    assert (prompt, response) == ("<user>Hi<assistant>", "Hello")
    assert seen == [CHAT_DATE, CHAT_DATE]

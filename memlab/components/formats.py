"""Dataset formats: how a source record becomes a training document, and where its response
starts (the point the attack's prompt / reference-suffix split and response-only training count
from).

    format       document                                   response (what the split counts from)
    text         the text column                            the whole document
    papers       title + blank line + body (abstract or     the whole document
                 markdown: data.paper_body; a body that
                 opens with the title, as a `# title`
                 heading, is not given it twice)
    instruction  data.template over instruction / input /  the output
                 output (default: instruction, input,
                 `### Response:`, output)
    chat         `messages` ({role, content}) up to the     the last assistant turn
                 last assistant turn, in the trial model's
                 chat template (memlab's plain layout when
                 the tokenizer has none)

The data stage is model-independent: it writes every document as text with `response_start`
(the character offset of the response in it; 0: the whole document) and, for chat, the
conversation itself (`messages`, JSON). Chat text in the dataset is memlab's plain layout
(`PLAIN_CHAT`: what the corpus-side scorers, the tiny model's tokenizer and `min_words` read);
the train and generate stages render the conversation again with the trial's tokenizer
(`encode`), both in the same way, so training and the attack see the same tokens.

Tokens: a document whose response starts after its first character is tokenized as two parts,
everything before the response and the response, joined (`encode`); so the response starts at
an exact token, the same one in training (labels of train.loss_on=response) and in the attack
(prompt = the tokens before the response + its first attack.prefix_tokens, suffix = the next
attack.suffix_tokens). A text or papers document is tokenized whole, as before formats existed.

Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable, Iterable

from memlab.config.formats import OPTIONAL, TEMPLATE_FIELDS, column, needed_fields
from memlab.config.schema import DataSection

log = logging.getLogger(__name__)

PLAIN_CHAT = "### {Role}:\n{content}"  # one message of memlab's plain chat layout
CHAT_DATE = "1 Jan 2025"  # the date chat templates that print one are given
PLAIN_CHAT_JOIN = "\n\n"


class FormatError(ValueError):
    """A record that cannot be read in the configured format."""


# ------------------------------------------------------------------------------- rendering
def render_template(template: str, values: dict[str, str]) -> tuple[str, int]:
    """An instruction record laid out by `template`: (text, offset of the output in it).

    A line holding only fields that are all empty is left out, and so is a blank line that
    would then follow another blank line (or start the document): an empty input leaves no
    blank lines behind."""
    kept: list[str] = []
    dropped = False
    for line in template.split("\n"):
        parts = list(string.Formatter().parse(line))
        names = [f for _, f, _, _ in parts if f is not None]
        literal = "".join(lit for lit, _, _, _ in parts)
        if names and not literal.strip() and all(not values.get(n) for n in names):
            dropped = True
            continue
        if dropped and not line.strip() and (not kept or not kept[-1].strip()):
            continue
        dropped = False
        kept.append(line)
    before, after = "\n".join(kept).split("{output}")
    prompt = before.format_map(values)
    text = prompt + values["output"] + after.format_map(values)
    return _strip(text, len(prompt))


def _strip(text: str, start: int) -> tuple[str, int]:
    lead = len(text) - len(text.lstrip())
    return text.strip(), max(0, start - lead)


def plain_chat(messages: list[dict]) -> tuple[str, int]:
    """memlab's plain chat layout (`### User:\\n...`, messages apart by a blank line): (text,
    offset of the last message's content, the response)."""
    head = [PLAIN_CHAT.format(Role=m["role"].capitalize(), content=m["content"])
            for m in messages[:-1]]
    last = messages[-1]
    opener = PLAIN_CHAT.format(Role=last["role"].capitalize(), content="")
    prompt = PLAIN_CHAT_JOIN.join(head + [opener])
    return _strip(prompt + last["content"], len(prompt))


def _text(v) -> str:
    return "" if v is None else str(v).strip()


def _messages(value, where: str) -> list[dict]:
    """The conversation up to its last assistant turn, as [{role, content}] ([] if it has no
    assistant turn with content)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise FormatError(f"{where}: messages is a string but not JSON") from None
    if not isinstance(value, list):
        raise FormatError(f"{where}: messages must be a list of {{role, content}}, got "
                          f"{type(value).__name__}")
    msgs = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or \
                not isinstance(m.get("content"), str):
            raise FormatError(f"{where}: message {j} is not a {{role, content}} mapping of "
                              f"strings: {m!r}"[:300])
        msgs.append({"role": m["role"], "content": m["content"]})
    last = max((j for j, m in enumerate(msgs) if m["role"] == "assistant"
                and m["content"].strip()), default=None)
    return [] if last is None else msgs[:last + 1]


def records(rows: Iterable[dict], d: DataSection, where: Callable[[int], str],
            default_id: Callable[[int], str]) -> tuple[list[dict], int]:
    """Documents of a source's rows in the section's format: ([{doc_id, text, response_start,
    messages}], rows left out for having no response). `where(i)` names row i in errors."""
    fields = needed_fields(d)
    id_col, id_set = column(d, "id")
    docs, skipped = [], 0
    for i, row in enumerate(rows):
        values = {}
        for name in fields:
            col, setting = column(d, name)
            if col not in row:
                if name in OPTIONAL and name not in d.columns:
                    values[name] = ""
                    continue
                raise FormatError(f"{where(i)} has no field '{col}' ({setting})"
                                  if setting.startswith("data.") else
                                  f"{where(i)} has no field '{col}' (canonical field "
                                  f"'{name}' of data.format {d.format}, read by {setting})")
            values[name] = row[col]
        if id_col:
            if id_col not in row:
                raise FormatError(f"{where(i)} has no field '{id_col}' ({id_set})")
            doc_id = str(row[id_col])
        else:
            doc_id = default_id(i)
        doc = {"doc_id": doc_id, "response_start": 0, "messages": None}
        if d.format == "text":
            doc["text"] = _text(values["text"])
        elif d.format == "papers":
            title, body = _text(values["title"]), _text(values[d.paper_body])
            first = body.split("\n", 1)[0].strip()
            repeats = d.paper_body == "markdown" and first.startswith("#") and \
                first.lstrip("#").strip() == title  # a markdown body opening with `# title`
            doc["text"] = f"{title}\n\n{body}" if title and not repeats else body
        elif d.format == "instruction":
            vals = {k: _text(values.get(k)) for k in TEMPLATE_FIELDS}
            if not vals["output"]:
                skipped += 1
                continue
            doc["text"], doc["response_start"] = render_template(d.template, vals)
        else:
            msgs = _messages(values["messages"], where(i))
            if not msgs:
                skipped += 1
                continue
            doc["text"], doc["response_start"] = plain_chat(msgs)
            doc["messages"] = json.dumps(msgs, ensure_ascii=False)
        docs.append(doc)
    return docs, skipped


# ------------------------------------------------------------------------------- tokens
def chat_parts(tok, messages: list[dict]) -> tuple[str, str]:
    """(everything before the response, the response) of a conversation in the tokenizer's
    chat template: the prompt is the conversation before the last (assistant) turn with the
    template's generation prompt; the response is the rest of the whole conversation's
    rendering (the turn's content and its end-of-turn tokens)."""
    # a fixed date: templates that print today's date (Llama 3.x) would otherwise attack with a
    # prompt other than the one trained on when the two run on different days
    kw = {"tokenize": False, "date_string": CHAT_DATE}
    try:
        full = tok.apply_chat_template(messages, **kw)
        prompt = tok.apply_chat_template(messages[:-1], add_generation_prompt=True, **kw)
    except Exception as e:  # jinja2's TemplateError: a system turn or roles the template refuses
        raise FormatError(f"the model's chat template refuses this conversation: {e}") from None
    if not full.startswith(prompt):  # a template that renders earlier turns differently
        at = full.rfind(messages[-1]["content"])
        if at < 0:
            raise FormatError("the chat template does not render the last assistant turn's "
                              "content verbatim: cannot tell where the response starts")
        prompt = full[:at]
    return prompt, full[len(prompt):]


def chat_layout(tok) -> str:
    """How chat records are rendered for this tokenizer: 'chat_template' or 'plain'."""
    return "chat_template" if getattr(tok, "chat_template", None) else "plain"


_WARNED: set[int] = set()


def encode(tok, rows: list[dict], n: int) -> list[tuple[list[int], int]]:
    """Tokens of dataset rows as training and the attack see them, and the index of each one's
    first response token: everything before the response (whole), then the response's first
    `n` tokens. A row whose response is the whole document (text, papers) is its first `n`
    tokens, tokenized whole; a chat row is rendered with the tokenizer's chat template, or, if
    it has none, as the dataset holds it (memlab's plain layout; logged once)."""
    from memlab.components.models import doc_tokens

    out: list[tuple[list[int], int] | None] = [None] * len(rows)
    whole = [i for i, r in enumerate(rows) if not r.get("response_start") and
             not r.get("messages")]
    split = sorted(set(range(len(rows))) - set(whole))
    if whole:
        for i, ids in zip(whole, doc_tokens(tok, [rows[i]["text"] for i in whole], n)):
            out[i] = (ids, 0)
    if split:
        templated = chat_layout(tok) == "chat_template"
        if not templated and any(rows[i].get("messages") for i in split) and \
                id(tok) not in _WARNED:
            _WARNED.add(id(tok))
            log.warning("the tokenizer has no chat template: chat records are rendered in "
                        "memlab's plain layout (### User:\\n... ### Assistant:\\n...)")
        heads, tails = [], []
        for i in split:
            r = rows[i]
            if r.get("messages") and templated:
                try:
                    head, tail = chat_parts(tok, json.loads(r["messages"]))
                except FormatError as e:
                    raise FormatError(f"document {r.get('doc_id')}: {e}") from None
            else:
                head, tail = r["text"][:r["response_start"]], r["text"][r["response_start"]:]
            heads.append(head)
            tails.append(tail)
        enc = lambda texts, **kw: tok(texts, add_special_tokens=False, **kw)["input_ids"]  # noqa: E731
        for i, h, t in zip(split, enc(heads), enc(tails, truncation=True, max_length=n)):
            out[i] = (h + t, len(h))
    return out  # type: ignore[return-value]


def loss_labels(ids: list[int], start: int, loss_on: str) -> list[int]:
    """Training labels of one sequence: its tokens, -100 before the response start when the
    loss is on the response only."""
    if loss_on == "response":
        return [-100] * min(start, len(ids)) + ids[start:]
    return list(ids)

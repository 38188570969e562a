"""Built-in synthetic demo corpus of private-looking documents.

memlab measures how much a fine-tuned LLM memorizes its fine-tuning data. To
run fully offline it needs a corpus that no model can already know, so this
module generates fictional documents in a dozen genres (patient records,
memos, incident reports, letters, ...). Every name, place, number, date and
code is invented -- person and place names are assembled from syllables -- so
if a model reproduces the continuation of one of these documents verbatim, it
can only have learned it from the fine-tuning data.

A document is a title line, a header line and paragraphs of sentences. Each
genre has a pool of facts (the diagnosis, the budget overrun, the flight, ...);
a document states a random selection of them in random order, each through one
of several sentence templates, optionally opened or closed by a short clause.
Templates hold ``{slot}`` fields (fresh random values, or per-document values
in upper case such as ``{P}``, the main person), ``[a|b]`` alternatives (which
nest and may hold slots) and ``<macro>`` references; fixed text between two
slots or alternatives is at most four words.

The templates, slots and word lists are data: ``corpus_templates.yaml`` next to
this module, read once per process through importlib.resources (so it ships in
the wheel). This module is the generator: it compiles the templates and slots,
keeps the n-gram guard and assembles documents. The file is YAML because people
edit it: a template stays one line, listed under its genre and fact, reading as
it will in a document, in double quotes that need no escapes (no template holds
a quote or a backslash); word lists are plain lists; comments sit beside what
they explain. (JSON allows no comments; TOML spells lists of lists of strings,
the facts, as nested arrays or a table per fact; a format of our own would need
its own parser.) Number ranges and word choices are written in the template
language itself (``{1..40:02d}``, ``[Park|Common]``), so only two kinds of slot
need a form of their own, ``{chance: ...}`` and ``{product: ...}``: see the
file's header.

Documents must not share text that a plagiarism metric would read as copied:
the generator remembers every word 7-gram (words: ``[a-z0-9]+`` of the
lowercased text, so punctuation neither splits nor hides a match) of the
documents made so far, and a sentence that would repeat one -- counting the
7-grams that span the previous sentence or the title and header -- from an
earlier document or from its own is drawn again (another template, other
values), and dropped after a few tries. Hence no 7-gram occurs in two documents,
nor twice in one (in a corpus of more than GUARD_DOCS documents: none within
GUARD_DOCS consecutive documents, so memory and time stay linear).

Standard library and PyYAML only; the output depends only on ``(num_docs, seed)``
(a private ``random.Random``, no ``hash()``) and the template file, and a shorter
corpus is a prefix of a longer one.
"""

from __future__ import annotations

import functools
import io
import itertools
import random
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NoReturn, TypeVar
from zlib import crc32

import yaml

T = TypeVar("T")
Draw = Callable[[random.Random], str]  # a slot: a fresh value at each call

TEMPLATES_FILE = "corpus_templates.yaml"
MIN_WORDS = 130
MAX_TARGET_WORDS = 250
NGRAM = 7  # no word NGRAM-gram occurs twice in a corpus...
GUARD_DOCS = 10_000  # ... of up to this many documents (else: in this many consecutive ones)
MAX_TRIES = 12  # draws of a sentence before it is dropped
LEAD_P, TAIL_P = 0.25, 0.2
_GENRE_KEYS = ("title", "header", "first", "last", "lead", "tail", "facts")
_REQUIRED_KEYS = {"title", "header", "facts"}
_MACRO_RE = re.compile(r"<(\w+)>")
_RANGE_RE = re.compile(r"(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)(?::(.*))?")
_INT_RANGE_RE = re.compile(r"(-?\d+)\.\.(-?\d+)")
_SYNTAX_RE = re.compile(r"[{}\[\]|<>]")
_A_NUMBER_RE = re.compile(r"\b([Aa]) (\d[\d,]*(?:\.\d+)?)")
_WORD_RE = re.compile(r"[a-z0-9]+")


# _ri/_ch are lean stand-ins for Random.randint/choice (one C call each); fast
# enough to build thousands of documents in a fraction of a second.
def _ri(r: random.Random, lo: int, hi: int) -> int:
    return lo + int(r.random() * (hi - lo + 1))


def _ch(r: random.Random, seq: Sequence[T]) -> T:
    return seq[int(r.random() * len(seq))]


# ---------------------------------------------------------------- compiled templates
# A compiled template is a list of items: str (literal text), _Const (the name of a
# per-document value), a Draw (a slot: called for a fresh value), tuple (alternatives of
# plain text: one is chosen) or list (alternatives holding slots or nested alternatives: each
# a list of items).
_Seq = list
_NO_CONSTS: dict[str, str] = {}


class _Const(str):
    """The name of a per-document value (``{P}``) in a compiled template."""


def _emit(seq: _Seq, rng: random.Random, ctx: dict[str, str], out: list[str]) -> None:
    for x in seq:
        t = type(x)
        if t is str:
            out.append(x)
        elif t is tuple:
            out.append(x[int(rng.random() * len(x))])
        elif t is _Const:
            out.append(ctx[x])
        elif t is list:
            _emit(x[int(rng.random() * len(x))], rng, ctx, out)
        else:
            out.append(x(rng))


def _fill(seq: _Seq, rng: random.Random, ctx: dict[str, str]) -> str:
    out: list[str] = []
    _emit(seq, rng, ctx, out)
    return "".join(out)


def _parse(text: str, resolve: Callable[[str], Any]) -> _Seq:
    """Parse ``{slot}`` and nested ``[a|b]`` into a list of items; ``resolve`` turns the
    text between braces into its item."""
    pos = 0

    def seq(stops: str) -> _Seq:
        nonlocal pos
        items: _Seq = []
        buf: list[str] = []
        while pos < len(text) and text[pos] not in stops:
            c = text[pos]
            if c in "{[" and buf:
                items.append("".join(buf))
                buf = []
            if c == "{":
                end = text.find("}", pos)
                if end < 0:
                    raise ValueError("a { without its }")
                items.append(resolve(text[pos + 1:end]))
                pos = end + 1
            elif c == "[":
                pos += 1
                alts = [seq("|]")]
                while pos < len(text) and text[pos] == "|":
                    pos += 1
                    alts.append(seq("|]"))
                if pos == len(text):
                    raise ValueError("a [ without its ]")
                pos += 1  # the ]
                items.append(_alternatives(alts))
            else:
                buf.append(c)
                pos += 1
        if buf:
            items.append("".join(buf))
        return items

    return seq("")


def _alternatives(alts: list[_Seq]) -> tuple[str, ...] | list[_Seq]:
    """Alternatives of plain text as a tuple of strings, others as a list of sequences."""
    if all(len(a) <= 1 and all(type(x) is str for x in a) for a in alts):
        return tuple(a[0] if a else "" for a in alts)
    return alts


def _picker(options: Sequence[str]) -> Draw:
    options, n = tuple(options), len(options)
    return lambda r: options[int(r.random() * n)]


def _number(lo: str, hi: str, spec: str) -> Draw:
    """``{lo..hi:spec}``: a whole number in [lo, hi], or a decimal if a bound has a point."""
    if "." in lo + hi:
        a, b = float(lo), float(hi)
        format(a, spec)  # a bad spec fails here, not in the middle of a corpus
        return lambda r: format(r.uniform(a, b), spec)
    a, span = int(lo), int(hi) - int(lo) + 1
    if span < 1:
        raise ValueError(f"empty range {lo}..{hi}")
    if not spec:
        return lambda r: str(a + int(r.random() * span))
    format(a, spec)
    return lambda r: format(a + int(r.random() * span), spec)


def _draw(seq: _Seq) -> Draw:
    """A slot's Draw from its compiled template: a pick of one word, the one slot the
    template holds, or the template filled."""
    if len(seq) == 1 and type(seq[0]) is tuple:
        return _picker(seq[0])
    if len(seq) == 1 and type(seq[0]) not in (str, list):
        return seq[0]
    return lambda r: _fill(seq, r, _NO_CONSTS)


# ---------------------------------------------------------------- the template file
class TemplateError(ValueError):
    """A template file that cannot be read; the message names the file and the key."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's when installed
    """YAML's safe loader, refusing a key given twice in one mapping (a slot defined twice,
    say), which YAML would settle silently by keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"found {key!r} twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class Genre:
    """A genre's compiled templates; ``first``, ``last``, ``lead`` and ``tail`` may be empty
    (the genre has none), the others never are."""

    title: list[_Seq]
    header: list[_Seq]
    first: list[_Seq]
    last: list[_Seq]
    lead: list[_Seq]
    tail: list[_Seq]
    facts: list[list[_Seq]]


@dataclass(frozen=True)
class Templates:
    """A template file, read: what the generator draws from, and (``sources``) every template
    of every genre as written and as compiled, for the checks in tests/ and bench/."""

    slots: dict[str, Draw]
    genres: dict[str, Genre]
    no_lead: frozenset[str]  # a sentence starting with one of these words gets no lead
    sources: tuple[tuple[str, _Seq], ...]


class _Parser:
    """Turns the file's slots into Draws and its templates into compiled templates;
    every error names the key it comes from."""

    def __init__(self, macros: dict[str, str], specs: dict[str, Any], source: str) -> None:
        self.macros, self.specs, self.source = macros, specs, source
        self.slots: dict[str, Draw] = {}
        self.resolving: list[str] = []  # the slots being read, to report a cycle

    def fail(self, where: str, message: str) -> NoReturn:
        raise TemplateError(f"{self.source}: {where}: {message}")

    def compile(self, template: str, where: str, consts: frozenset[str] = frozenset()) -> _Seq:
        """A template's compiled form; ``consts`` are the per-document names it may use."""
        text = template
        try:
            for _ in range(len(self.macros) + 1):  # macros may hold macros
                expanded = _MACRO_RE.sub(lambda m: self.macros[m.group(1)], text)
                if expanded == text:
                    break
                text = expanded
            else:
                raise ValueError("a macro that holds itself")
            return _parse(text, lambda name: self.resolve(name, consts))
        except TemplateError:
            raise
        except KeyError as e:
            self.fail(where, f"unknown macro <{e.args[0]}> in {template!r}")
        except ValueError as e:
            self.fail(where, f"{e} in {template!r}")

    def resolve(self, name: str, consts: frozenset[str]) -> Any:
        if name in consts:
            return _Const(name)
        m = _RANGE_RE.fullmatch(name)
        if m:
            return _number(*m.groups(default=""))
        if name not in self.specs:
            raise ValueError(f"unknown slot {{{name}}}")
        return self.slot(name)

    def slot(self, name: str) -> Draw:
        if name not in self.slots:
            if name in self.resolving:
                self.fail(f"slots.{name}", "refers to itself: " + " -> ".join(
                    self.resolving[self.resolving.index(name):] + [name]))
            self.resolving.append(name)
            self.slots[name] = self._slot(self.specs[name], f"slots.{name}")
            self.resolving.pop()
        return self.slots[name]

    def _slot(self, spec: Any, where: str) -> Draw:
        if isinstance(spec, str):
            return _draw(self.compile(spec, where))
        if isinstance(spec, list):
            alts = [self.compile(s, f"{where}[{i}]") for i, s in enumerate(self.texts(spec, where))]
            return _draw([_alternatives(alts)])
        if isinstance(spec, dict) and set(spec) == {"chance", "then"}:
            p = spec["chance"]
            if type(p) not in (int, float) or not 0 <= p <= 1 or not isinstance(spec["then"], str):
                self.fail(where, "chance is a probability and then a template")
            then = _draw(self.compile(spec["then"], f"{where}.then"))
            return lambda r: then(r) if r.random() < p else ""
        if isinstance(spec, dict) and "product" in spec and set(spec) <= {"product", "format"}:
            return self._product(spec, where)
        self.fail(where, "a slot is a template, a list of templates, "
                         "{chance: p, then: template} or {product: [...], format: ...}")

    def texts(self, value: Any, where: str) -> list[str]:
        """``value``, a non-empty list of strings (templates or words)."""
        if not isinstance(value, list) or not value:
            self.fail(where, "a non-empty list of templates")
        for i, text in enumerate(value):
            if not isinstance(text, str):
                self.fail(f"{where}[{i}]", f"{text!r} is not text: YAML reads some words "
                                           "(on, no, yes, numbers) as other things; quote it")
        return value

    def _product(self, spec: dict, where: str) -> Draw:
        """One draw from every combination of the factors (see the file's header)."""
        if not isinstance(spec["product"], list):
            self.fail(f"{where}.product", "a list of factors")
        factors: list[Sequence] = []
        for i, f in enumerate(spec["product"]):
            words = self.specs.get(f) if isinstance(f, str) else None
            m = _INT_RANGE_RE.fullmatch(f) if isinstance(f, str) else None
            if m:
                factors.append(range(int(m[1]), int(m[2]) + 1))
            elif isinstance(words, list) and all(
                    isinstance(w, str) and not _SYNTAX_RE.search(w) for w in words):
                factors.append(words)
            else:
                self.fail(f"{where}.product[{i}]",
                          "a factor is lo..hi or the name of a slot listing plain words")
        fmt = spec.get("format")
        try:
            values = [fmt.format(*c) if fmt else "".join(map(str, c))
                      for c in itertools.product(*factors)]
        except (AttributeError, IndexError, KeyError, ValueError) as e:
            self.fail(f"{where}.format", f"{fmt!r} cannot write the factors' values: {e!r}")
        if not values:
            self.fail(where, "no combination")
        return _picker(values)

    def genre(self, spec: Any, where: str, consts: frozenset[str],
              sources: list[tuple[str, _Seq]]) -> Genre:
        if not isinstance(spec, dict) or not _REQUIRED_KEYS <= set(spec) <= set(_GENRE_KEYS):
            self.fail(where, f"a genre has {', '.join(sorted(_REQUIRED_KEYS))} and may have "
                             "first, last, lead, tail; nothing else")

        def templates(value: Any, at: str) -> list[_Seq]:
            seqs = [self.compile(t, f"{at}[{i}]", consts)
                    for i, t in enumerate(self.texts(value, at))]
            sources.extend(zip(value, seqs))
            return seqs

        parts = {k: templates(spec[k], f"{where}.{k}") for k in _GENRE_KEYS[:-1] if k in spec}
        facts = spec["facts"]
        if not isinstance(facts, list) or not facts:
            self.fail(f"{where}.facts", "a non-empty list of facts, each a list of templates")
        parts["facts"] = [templates(f, f"{where}.facts[{i}]") for i, f in enumerate(facts)]
        return Genre(**{k: parts.get(k, []) for k in _GENRE_KEYS})


def parse_templates(text: str, source: str = "<templates>") -> Templates:
    """Read a template file (the format of corpus_templates.yaml, whose header describes it);
    unknown keys, unknown slots and malformed templates are errors naming their key."""
    stream = io.StringIO(text)
    stream.name = source  # YAML's errors name the file and line
    try:
        data = yaml.load(stream, Loader=_Loader)
    except yaml.YAMLError as e:
        raise TemplateError(str(e)) from None
    keys = {"macros": dict, "no_lead": str, "slots": dict, "genres": dict}
    if not isinstance(data, dict) or set(data) != set(keys):
        raise TemplateError(f"{source}: the top-level keys are {', '.join(keys)}")
    for key, kind in keys.items():
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, dict) and not all(
                isinstance(k, str) for k in value):
            raise TemplateError(f"{source}: {key}: a {kind.__name__} (with string keys)")
    if not all(isinstance(v, str) for v in data["macros"].values()):
        raise TemplateError(f"{source}: macros: each macro is a string")
    parser = _Parser(data["macros"], data["slots"], source)
    slots = {name: parser.slot(name) for name in data["slots"]}
    try:  # the per-document names: whatever _doc_constants makes from these slots
        consts = frozenset(_doc_constants(random.Random(0), slots))
    except KeyError as e:
        raise TemplateError(f"{source}: slots: no slot {e}, which a document's values need") \
            from None
    if consts & slots.keys():
        raise TemplateError(f"{source}: slots: {sorted(consts & slots.keys())} are names of "
                            "per-document values")
    sources: list[tuple[str, _Seq]] = []
    genres = {name: parser.genre(spec, f"genres.{name}", consts, sources)
              for name, spec in data["genres"].items()}
    if not genres:
        raise TemplateError(f"{source}: genres: none")
    return Templates(slots, genres, frozenset(data["no_lead"].split()), tuple(sources))


@functools.cache
def default_templates() -> Templates:
    """corpus_templates.yaml, read once per process."""
    path = resources.files(__package__).joinpath(TEMPLATES_FILE)
    return parse_templates(path.read_text(encoding="utf-8"), TEMPLATES_FILE)


# ---------------------------------------------------------------- documents
def _doc_constants(rng: random.Random, slots: dict[str, Draw]) -> dict[str, str]:
    """The values that stay the same within a document (``{P}`` the main person, ``{C}`` its
    city, ...); their names are the per-document names a template may use."""
    first, last = slots["first"](rng), slots["last"](rng)
    born = _ri(rng, 1840, 1950)
    died = born + _ri(rng, 48, 97)
    ht = slots["house"](rng)
    ctx = {
        "P": f"{first} {last}", "Pf": first, "Pl": last, "R": slots["first"](rng),
        "C": slots["city"](rng), "D": slots["city"](rng), "ORG": slots["org2"](rng),
        "H": slots["hotel"](rng), "ADDR": slots["street"](rng), "DT": slots["date"](rng),
        "HT": ht, "ht": ht.lower(), "BEDS": str(_ri(rng, 1, 6)), "BY": str(born),
        "DY": str(died), "AGE": str(died - born),
    }
    return ctx


def _sentence(choices: Sequence[_Seq], genre: Genre, no_lead: frozenset[str],
              rng: random.Random, ctx: dict[str, str], frame: bool) -> str:
    """One sentence: one of the templates of a fact, maybe framed by a lead and a tail clause."""
    body = _fill(_ch(rng, choices), rng, ctx)
    if frame and genre.lead and rng.random() < LEAD_P and body.split(" ", 1)[0] not in no_lead:
        body = _fill(_ch(rng, genre.lead), rng, ctx) + body
    end = body[-1]
    if end in "?!":
        body, end = body[:-1], end
    else:
        end = "."
        if frame and genre.tail and rng.random() < TAIL_P:
            body += _fill(_ch(rng, genre.tail), rng, ctx)
    if "  " in body:
        body = " ".join(body.split())
    if "a " in body or "A " in body:
        body = _A_NUMBER_RE.sub(_article, body)
    return body[0].upper() + body[1:] + end


def _article(m: re.Match) -> str:
    """'a' or 'an' before a number: an 8, an 11, an 18, an 80, an 11,500, an 18.5."""
    whole = m.group(2).split(".")[0].replace(",", "")
    lead = whole[:(len(whole) - 1) % 3 + 1]  # the digits read before "thousand", ...
    an = lead[0] == "8" or lead in ("11", "18")
    return (m.group(1) + "n " if an else m.group(1) + " ") + m.group(2)


class _NgramGuard:
    """The word n-grams of the last GUARD_DOCS documents; admits a piece of text only if it
    adds none that occurs already (in one of those documents, or earlier in this one).

    An n-gram is kept as the CRC-32 of its words joined by spaces (deterministic, no
    ``hash()``): a repeat always has the same key, so none gets through; two different
    n-grams sharing a key only cost a needless redraw (about one lookup in 10^4 at the
    default corpus size)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.history: deque[set[int]] = deque()  # the keys of each remembered document
        self.redraws = 0  # sentences drawn again (statistics)
        self.dropped = 0  # sentences given up after MAX_TRIES draws

    def start(self) -> None:
        self.tail: list[str] = []  # the last NGRAM - 1 words of the document so far
        self.doc: set[int] = set()

    def admit(self, text: str) -> bool:
        window = self.tail + _WORD_RE.findall(text.lower())
        grams = map(" ".join, zip(*(window[i:] for i in range(NGRAM))))
        keys = list(map(crc32, map(str.encode, grams)))
        if len(set(keys)) < len(keys) or not self.seen.isdisjoint(keys) \
                or not self.doc.isdisjoint(keys):
            return False
        self.tail = window[-(NGRAM - 1):]
        self.doc.update(keys)
        return True

    def finish(self) -> None:
        self.seen |= self.doc
        self.history.append(self.doc)
        if len(self.history) > GUARD_DOCS:  # keys are unique to one document: drop its own
            self.seen -= self.history.popleft()


def _place(guard: _NgramGuard, choices: Sequence[_Seq], genre: Genre, no_lead: frozenset[str],
           rng: random.Random, ctx: dict[str, str], frame: bool) -> str | None:
    """The first of up to MAX_TRIES drawn sentences that the guard admits, else None."""
    for _ in range(MAX_TRIES):
        text = _sentence(choices, genre, no_lead, rng, ctx, frame)
        if guard.admit(text):
            return text
        guard.redraws += 1
    guard.dropped += 1
    return None


def _make_document(rng: random.Random, tpl: Templates, name: str, guard: _NgramGuard) -> str:
    genre, no_lead = tpl.genres[name], tpl.no_lead
    ctx = _doc_constants(rng, tpl.slots)
    for _ in range(100):  # the title and header (always unique in practice)
        guard.start()
        head = [_fill(_ch(rng, genre.title), rng, ctx), _fill(_ch(rng, genre.header), rng, ctx)]
        if guard.admit("\n".join(head)):
            break
        guard.redraws += 1
    else:
        raise RuntimeError(f"demo corpus: no unique title for a {name} document")
    words = sum(len(s.split()) for s in head)
    target = _ri(rng, MIN_WORDS + 10, MAX_TARGET_WORDS)
    sentences: list[str] = []
    if genre.first:
        s = _place(guard, genre.first, genre, no_lead, rng, ctx, False)
        if s is not None:
            sentences.append(s)
            words += len(s.split())
    closing = 8 if genre.last else 0  # words kept for the closing sentence
    pool: list[int] = []
    rounds = 0
    while words + closing < target and rounds < 4:
        if not pool:
            pool = list(range(len(genre.facts)))
            rng.shuffle(pool)
            rounds += 1
        s = _place(guard, genre.facts[pool.pop()], genre, no_lead, rng, ctx, True)
        if s is not None:
            sentences.append(s)
            words += len(s.split())
    if genre.last:
        s = _place(guard, genre.last, genre, no_lead, rng, ctx, False)
        if s is not None:
            sentences.append(s)
    guard.finish()
    paragraphs, i = [], 0
    while i < len(sentences):
        step = _ri(rng, 2, 5)
        paragraphs.append(" ".join(sentences[i:i + step]))
        i += step
    return "\n".join(head) + "\n\n" + "\n\n".join(paragraphs)


def generate_demo_corpus(num_docs: int = 2400, seed: int = 0, *, stats: dict | None = None,
                         templates: Templates | None = None) -> list[dict]:
    """Return ``num_docs`` synthetic documents ``{"doc_id", "text", "genre"}``.

    Deterministic in ``(num_docs, seed)`` (a private ``random.Random(seed)``,
    no global state, no ``hash()``); genres cycle in a seed-dependent order so
    every genre appears once ``num_docs >= len(genres)``. No word 7-gram occurs
    in two documents (up to GUARD_DOCS documents; beyond, in two of GUARD_DOCS
    consecutive ones), so texts are distinct. ``stats``, if given, receives the
    number of sentences the 7-gram guard drew again (``redraws``) and gave up
    (``dropped``). ``templates`` (from ``parse_templates``) replaces the packaged
    corpus_templates.yaml, to measure a draft of it (bench/corpus_stats.py).
    """
    tpl = default_templates() if templates is None else templates
    rng = random.Random(seed)
    order = list(tpl.genres)
    rng.shuffle(order)
    guard = _NgramGuard()
    docs: list[dict] = []
    for i in range(num_docs):
        genre = order[i % len(order)]
        text = _make_document(rng, tpl, genre, guard)
        docs.append({"doc_id": f"demo-{i:05d}", "text": text, "genre": genre})
    if stats is not None:
        stats.update(redraws=guard.redraws, dropped=guard.dropped)
    return docs

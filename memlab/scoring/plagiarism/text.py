"""Text preparation for plagiarism typing (PLAGIARISM.md section 2): sentences merged to a
minimum length, their Porter stems as ids, and the facts (numbers, names) a paraphrase must
keep. A generated text is prepared once, not once per candidate."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from memlab.config.schema import PlagiarismSection

SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


class Stemmer:
    """Porter stems with a cache (most words repeat); PyStemmer's C implementation."""

    def __init__(self):
        import Stemmer as pystemmer

        self._stem = pystemmer.Stemmer("porter").stemWord
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        s = self._cache.get(word)
        if s is None:
            s = self._cache[word] = self._stem(word)
        return s


def split_sentences(text: str, min_words: int, stem: Callable[[str], str]):
    """[(start, end, [stems])] after merging short sentences (PLAGIARISM.md section 2)."""
    raw = []
    pos = 0
    for m in list(SENT_SPLIT.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            s = pos + (len(piece) - len(piece.lstrip()))
            words = [stem(w) for w in (x.lower() for x in WORD.findall(stripped)) if len(w) > 2]
            raw.append([s, s + len(stripped), words])
        pos = m.end() if m else len(text)
    out: list[list] = []
    pending = None
    for s in raw:
        if pending is not None:
            s = [pending[0], s[1], pending[2] + s[2]]
            pending = None
        if len(s[2]) < min_words:
            pending = s
        else:
            out.append(s)
    if pending is not None:
        if out:
            out[-1] = [out[-1][0], pending[1], out[-1][2] + pending[2]]
        else:
            out.append(pending)
    return out


@dataclass
class Prepared:
    """One text: sentence spans and stem ids per sentence."""

    text: str
    spans: np.ndarray  # (S, 2) int
    toks: list[np.ndarray]  # stem ids per sentence


class Vocab:
    def __init__(self, stems: list[str] | None = None):
        self.ids: dict[str, int] = {s: i for i, s in enumerate(stems or [])}

    def __call__(self, stem: str) -> int:
        i = self.ids.get(stem)
        if i is None:
            i = self.ids[stem] = len(self.ids)
        return i

    def stems(self) -> list[str]:
        return list(self.ids)


def prepare(text: str, p: PlagiarismSection, stem: Stemmer, vocab: Vocab) -> Prepared:
    sents = split_sentences(text, p.min_sentence_words, stem)
    spans = np.array([[s, e] for s, e, _ in sents], dtype=np.int64).reshape(-1, 2)
    toks = [np.array([vocab(w) for w in ws], dtype=np.int64) for _, _, ws in sents]
    return Prepared(text, spans, toks)


def normalise(s: str) -> str:
    """Lowercased, whitespace collapsed: two sentences equal after this are no paraphrase."""
    return " ".join(s.lower().split())


_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")


def _word(w: str) -> str:
    w = w.rstrip("'-")
    return w[:-2] if w.endswith("'s") else w


def facts(sentence: str) -> tuple[set[str], set[str]]:
    """(the sentence's facts: its numbers (thousands commas dropped: 2,310 = 2310) and its
    capitalised words other than the first word and the pronoun I, lowercased; every number
    and word it holds, lowercased)."""
    nums = {n.rstrip(".,:/").replace(",", "") for n in _NUMBER.findall(sentence)}
    words = [_word(w) for w in _WORD.findall(sentence)]
    caps = {w.lower() for i, w in enumerate(words)
            if i > 0 and w[:1].isupper() and w.split("'")[0] != "I"}
    return nums | caps, nums | {w.lower() for w in words}


def facts_agree(a: str, b: str) -> bool:
    """Each sentence's facts occur among the other's words (in any case and position, so a
    name moved to the front still counts): the paraphrase judge's entity condition."""
    fa, wa = facts(a)
    fb, wb = facts(b)
    return fa <= wb and fb <= wa


def text_facts(text: str) -> set[str]:
    """Every number and word a passage holds, lowercased (facts' second set): the side
    `facts_within` looks a sentence's facts up in."""
    return facts(text)[1]


def facts_within(sentence: str, words: set[str]) -> bool:
    """The sentence's facts occur among `words` (text_facts of the other side of a case): the
    paraphrase judge's entity condition over a whole case (semantic.paraphrase_facts case),
    where a paraphrase may move a name or number into another sentence."""
    return facts(sentence)[0] <= words


_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = {**{w: i for i, w in enumerate(_UNITS)},
                **{w: 20 + 10 * i for i, w in enumerate(_TENS)}}
_STEMMER: list[Stemmer] = []


def _stem(word: str) -> str:
    if not _STEMMER:
        _STEMMER.append(Stemmer())
    return _STEMMER[0](word)


def _number(word: str) -> str | None:
    """A number written in words as digits: `three` -> 3, `twenty-five` -> 25 (one word, or
    the tens and units parts of a hyphenated one); None for other words."""
    if word in NUMBER_WORDS:
        return str(NUMBER_WORDS[word])
    tens, _, unit = word.partition("-")
    if tens in _TENS and NUMBER_WORDS.get(unit, 10) < 10:
        return str(NUMBER_WORDS[tens] + NUMBER_WORDS[unit])
    return None


def word_forms(words: set[str]) -> set[str]:
    """The forms under which a text's words (lowercased, as `facts` gives them) hold a fact
    (semantic.idea_fact_forms): each word, its Porter stem, and, for a number written in
    words, its digits; a hyphenated word also as its parts (`four-kilometre` holds 4,
    `Denmark-based` holds denmark)."""
    out: set[str] = set()
    for w in words:
        whole = _number(w)
        for x in ({w} if whole is not None else {w, *w.split("-")} - {""}):
            n = _number(x)
            out |= {x, _stem(x)} | ({n} if n is not None else set())
    return out


_NUM_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+|[^\sa-z0-9'-]")  # (punctuation ends a phrase)
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9}
# what may follow what inside a number phrase (`and` only after hundred or a scale word, the
# British "a hundred and fifty"; digits only before a scale word, "9 million")
_NEXT = {"digits": {"scale"}, "a": {"hundred", "scale"}, "unit": {"hundred", "scale"},
         "teen": {"hundred", "scale"}, "tens": {"unit", "scale"},
         "hundred": {"and", "unit", "teen", "tens", "scale"},
         "scale": {"and", "unit", "teen", "tens"}, "and": {"unit", "teen", "tens"}}


def _kind(tok: str) -> str | None:
    if tok[0].isdigit():
        try:  # `1.2.3`, a superscript digit (`²`): not a number a phrase can start with
            Decimal(tok.replace(",", ""))
        except InvalidOperation:
            return None
        return "digits"
    if tok in ("a", "an", "and", "hundred"):
        return {"an": "a"}.get(tok, tok)
    if tok in _SCALES:
        return "scale"
    v = NUMBER_WORDS.get(tok)
    return None if v is None else "unit" if v < 10 else "teen" if v < 20 else "tens"


def _digits(v: Decimal) -> str:
    """(Decimal, not float: `8.3 billion` is 8300000000, not 8300000000.000001.)"""
    return str(int(v)) if v == v.to_integral_value() else format(v.normalize(), "f")


def number_phrases(text: str) -> list[tuple[str | None, str, str | None]]:
    """The numbers a text writes as phrases (semantic.idea_number_phrases): each run of number
    words, with `a`/`an` before hundred or a scale word and `and` after hundred or a scale
    word (`a hundred and fifty`, `four hundred and twenty thousand`, `thirty-four`), or digits
    before a scale word (`9 million`, `1.2 million`), as (the leading digits as written, in a
    fact's form, or None; its value in digits; where it ends in a scale word, the value before
    that word, or None): `nine million` -> (None, '9000000', '9'), `9 million` -> ('9',
    '9000000', '9'). Fractions (`two and a half million`) are not read; of an ordinal its
    cardinal part is (`twenty-first` -> 20). A small
    parser: text2num (PyPI) reads the word runs alike but writes `9 million` as `9 1000000`."""
    toks = _NUM_TOKEN.findall(text.lower())
    kinds = [_kind(t) for t in toks]
    out: list[tuple[str | None, str, str | None]] = []
    i = 0
    while i < len(toks):
        k = kinds[i]
        nxt = kinds[i + 1] if i + 1 < len(toks) else None
        if k not in ("unit", "teen", "tens") and not (k in ("digits", "a") and nxt in _NEXT[k]):
            i += 1
            continue
        lead = toks[i].replace(",", "") if k == "digits" else None
        total, cur, last_scale, j = Decimal(0), Decimal(0), None, i
        while j < len(toks) and (j == i or kinds[j] in _NEXT[kinds[j - 1]]):
            t, kj = toks[j], kinds[j]
            if kj == "digits":
                cur = Decimal(lead)
            elif kj == "a":
                cur = Decimal(1)
            elif kj == "hundred":
                cur *= 100
            elif kj == "scale":
                total, cur, last_scale = total + cur * _SCALES[t], Decimal(0), _SCALES[t]
            elif kj != "and":
                cur += NUMBER_WORDS[t]
            j += 1
        while kinds[j - 1] in ("and", "a"):  # (a dangling `and`: not the phrase's)
            j -= 1
        value = total + cur
        ends_scaled = kinds[j - 1] == "scale"
        out.append((lead, _digits(value), _digits(value / last_scale) if ends_scaled else None))
        i = j
    return out


def phrase_forms(text: str) -> set[str]:
    """The digits under which a text's number phrases hold a fact: each phrase's value and,
    where it ends in a scale word, the value before it (`nine million` holds 9000000 and 9)."""
    return {x for _, v, m in number_phrases(text) for x in (v, m) if x is not None}


def scaled_facts(sentence: str) -> dict[str, str]:
    """A source sentence's number facts written in digits before a scale word, each with its
    whole value (`9 million` -> {'9': '9000000'}): held by that value too."""
    return {lead: v for lead, v, m in number_phrases(sentence) if lead is not None and m}


def fact_found(fact: str, forms: set[str]) -> bool:
    """A source fact is among a text's `word_forms`: as written, or by its Porter stem
    (`Vikings` and `Viking`); numbers are written in digits in a source's facts."""
    return fact in forms or _stem(fact) in forms

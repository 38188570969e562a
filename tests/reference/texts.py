"""Generated-text fixtures for the plagiarism reference: what a fine-tuned model might emit
when attacked, built from the fine-tuning corpus itself.

`make_generated_texts(corpus, n, seed)` returns dicts {"id", "text", "kind", "source_doc_id"}
(source_doc_id: the corpus document the text was built from, None for "unrelated"; for
"same_topic" the corpus document whose genre was matched). Kinds, in equal shares:

- copy:        a contiguous passage (>= 60 chars, word boundaries, sometimes to the doc's end)
               of one corpus document, optionally with an unrelated filler sentence before/after.
- near_copy:   such a passage with a few words dropped, swapped for synonyms or numbers changed.
- paraphrase:  2-4 consecutive sentences rewritten sentence by sentence: intro clauses moved,
               synonyms swapped from a built-in table, number/date/time/money formats changed.
- elaboration: 1-2 consecutive sentences restated inside a much longer text with invented
               connective sentences around each fact (an expanded "idea").
- unrelated:   a passage of a document of generate_demo_corpus(..., seed=seed+1000), never in
               the corpus (same generator, so often the same genre templates).
- same_topic:  a passage of a document of that other corpus in the same genre as a chosen
               corpus document (same template style, different facts).

Deterministic: a private random.Random(seed) only.
"""

from __future__ import annotations

import random
import re

from memlab.components.corpus import generate_demo_corpus

KINDS = ["copy", "near_copy", "paraphrase", "elaboration", "unrelated", "same_topic"]

FILLER = [
    "Here is the text you asked for.",
    "The remainder of the file is not reproduced here.",
    "I hope this helps with your request.",
    "Further details are available in the attached notes.",
    "Please let me know if you need anything else.",
    "This is an excerpt from the original record.",
    "Some parts of the original have been omitted for brevity.",
    "Continued on the next page.",
]

SYNONYMS = {
    "presented to": "came to", "complaining of": "with complaints of", "reporting": "describing",
    "on arrival": "when admitted", "ordered": "requested", "showed": "revealed",
    "was started on": "was put on", "monitored": "observed", "prior": "previous",
    "documented": "recorded", "notable for": "significant for", "episodes": "bouts",
    "lives at": "resides at", "planned": "arranged", "confirmed": "verified", "reduced": "lowered",
    "must be approved": "need sign-off", "follows": "comes after", "exceeded": "overran",
    "submit": "file", "outstanding": "pending", "before": "prior to", "replace": "swap out",
    "questions regarding": "queries about", "directed to": "sent to", "please note that": "be aware that",
    "still missing": "yet to be found", "revised": "updated", "including": "with",
    "currently stands at": "is now", "against a plan of": "compared with a target of",
    "issued": "given out", "stop working": "be deactivated", "summary": "overview",
    "prepared by": "written by", "fail to comply": "do not comply", "thank you to": "thanks go to",
    "compiling": "putting together", "approximately": "around", "isolated": "cordoned off",
    "notified": "alerted", "employees": "staff members", "evacuated": "moved out",
    "inspection": "check", "estimated": "expected", "excluding": "not counting", "stated": "said",
    "minor": "small", "returned to work": "was back at work", "identified": "pinpointed",
    "worn": "degraded", "serviced": "maintained", "similar": "comparable", "designed for": "built for",
    "weighs": "has a weight of", "without": "minus", "dimensions": "measurements",
    "tolerance": "margin", "running": "using", "roughly": "about", "continuous": "nonstop",
    "must meet": "has to satisfy", "verified": "confirmed", "uses": "operates on",
"supports": "handles", "approved": "signed off",
    "scheduled": "planned", "beginning": "starting", "replaces": "succeeds", "tracked": "followed",
    "opened the meeting": "began the meeting", "present": "in attendance", "presented": "gave",
    "showing": "indicating", "deferred": "postponed", "moved that": "proposed that",
    "seconded": "backed", "carried": "passed", "circulate": "distribute", "noted": "observed",
    "fell to": "dropped to", "down from": "compared with", "raised a concern": "voiced a worry",
    "expires": "ends", "postponed": "delayed", "thanked": "expressed gratitude to",
    "signed up": "registered", "unspent": "unused", "keeps asking": "keeps wondering",
    "finally": "at last", "produced": "yielded", "sends her love": "says hello",
    "started": "began", "seems decent enough": "appears reasonable", "went up": "rose",
    "remember": "recall", "missed": "lost", "enclosed": "included", "repairs": "fixes",
    "village": "hamlet", "children": "kids", "attended": "went to", "encouraged": "fostered",
    "moved to": "relocated to", "granted": "awarded", "married": "wed", "organized": "set up",
    "housed": "sheltered", "dispute": "quarrel", "lasted": "went on for", "ended in": "closed with",
    "settlement": "payout", "remembered": "recalled", "established": "founded", "donated": "given",
    "taught": "instructed", "destroyed": "wrecked", "travelled": "went", "demonstrate": "show",
    "died": "passed away", "prepared": "made", "stored": "kept", "higher than": "above",
    "repeated": "redid", "faint": "weak", "absent": "not present", "recalibrated": "calibrated again",
    "drift": "shift", "inhibits": "blocks", "looked healthy": "appeared healthy",
    "discussed": "talked over", "alarm sounded": "alarm went off", "hereby given": "given",
    "required to appear": "obliged to appear", "concerns": "relates to", "totaling": "amounting to",
    "services rendered": "work done", "wishing to": "who wants to", "lodge": "file",
    "reachable": "contactable", "restrained": "blocked", "may result in": "could lead to",
    "formerly": "previously", "published": "printed", "consecutive": "successive",
    "expected": "likely", "depart": "leave", "arriving": "landing", "reserved": "booked",
    "guests": "people", "departs": "leaves", "valid": "good", "per diem": "daily allowance",
    "on foot": "walking", "connecting through": "via", "medical costs": "healthcare expenses",
    "contacted": "reached out to", "stating": "saying", "purchased": "bought",
    "stopped working": "failed", "charged": "billed", "persisted": "remained", "offered": "proposed",
    "working days": "business days", "declined": "refused", "refund": "reimbursement",
    "supervisor": "manager", "priority": "urgency", "confirms": "says", "parcel": "package",
    "applied": "added", "rather than": "instead of", "linked": "attached", "offers": "provides",
    "living space": "floor area", "floors": "storeys", "built": "constructed", "fully": "completely",
    "refitted": "renovated", "measures": "is", "opens onto": "leads to", "overlooks": "faces",
    "current owners": "present owners", "viewings": "visits", "considered": "looked at",
    "sellers": "vendors", "insulated": "lagged", "depth": "thickness", "on request": "if asked",
    "reported": "mentioned", "recorded": "logged", "requested": "asked for", "meeting": "session",
    "staff": "employees", "customer": "client", "agreed": "decided", "closed": "shut",
}
_SYN_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True))
                     + r")\b", re.IGNORECASE)

NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
             "eighteen", "nineteen", "twenty"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
_LOWERABLE = {"The", "A", "An", "This", "Our", "Any", "All", "Staff", "Access", "Please", "Departments",
              "Exceptions", "Members", "Under", "It", "Apologies", "Discussion", "Action", "Initial",
              "Estimated", "Contractor", "Corrective", "Ambient", "Housing", "Rated", "Battery",
              "Operating", "Enclosure", "Target", "Engineering", "Pilot", "Drop", "Open", "Laboratory",
              "Nursing", "Family", "Imaging", "Discharge", "Insurance", "Depart", "Seat", "Lunch",
              "Visa", "Per", "Free", "Return", "Travel", "Check-in", "Ticket", "Logs", "Courier",
              "Agent", "Follow-up", "Escalated", "Built", "Annual", "Viewings", "Offers", "Survey",
              "Energy", "Prepared", "Sample", "Absorbance", "Repeated", "Gel", "Hypothesis", "Cell",
              "Ordered", "Discussed", "Freezer", "Mass", "Counsel", "Failure", "Documents",
              "Creditors", "Dear", "Do", "Did", "We", "My", "I", "Write", "Aunt", "In", "On", "At"}
OPENERS = ["In addition, ", "Also, ", "It was also noted that ", "For the record, ", "Notably, "]

CONNECTIVES = [
    "It is worth pausing on this detail, because it shaped much of what followed.",
    "Looking back, {k1} turned out to matter far more than anyone had expected at the time.",
    "Nobody involved at that stage could have guessed how {k1} would play out over the following weeks.",
    "This was not an isolated point, and it connects to {k2} in ways that are easy to overlook.",
    "Those who were close to the situation still describe {k1} as a turning point.",
    "To understand why, it helps to consider the wider circumstances surrounding {k2}.",
    "The record is brief on this, but the implications for {k1} were considerable.",
    "In practical terms, this meant that several plans had to be revisited and adjusted.",
    "Several people later remarked that {k2} had been discussed informally long before it was written down.",
    "The significance of {k1} only became clear once the other pieces of the story fell into place.",
    "It would be a mistake to read too much into this, yet it cannot be ignored either.",
    "What follows from {k2} is a chain of small decisions, each reasonable on its own.",
    "Many readers will recognise the pattern, since similar situations arise more often than people admit.",
    "The documents that survive say little more, so the rest has to be pieced together carefully.",
]


# ------------------------------------------------------------------ helpers
def demo_corpus(num_docs: int = 2000, seed: int = 0) -> list[dict]:
    return generate_demo_corpus(num_docs, seed)


def _body_sentences(text: str) -> list[str]:
    """Sentences of the body (after the title and header lines)."""
    body = text.split("\n\n", 1)[1] if "\n\n" in text else text
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", body) if s.strip()]


def _passage(rng: random.Random, text: str, lo: int, hi: int, to_end_p: float) -> str:
    """A contiguous passage at word boundaries of >= lo chars (about lo..hi), maybe to the end."""
    starts = [0] + [m.end() for m in re.finditer(r"\s+", text)]
    starts = [s for s in starts if len(text) - s >= lo] or [0]
    s = rng.choice(starts)
    if rng.random() < to_end_p:
        return text[s:].strip()
    target = s + rng.randint(lo, hi)
    ends = [m.start() for m in re.finditer(r"\s+", text) if m.start() - s >= lo] + [len(text)]
    e = min(ends, key=lambda x: abs(x - target))
    return text[s:e].strip()


def _num_word(m: re.Match) -> str:
    return NUM_WORDS[int(m.group(0))]


def _reformat_numbers(s: str, rng: random.Random) -> str:
    def money(m):
        whole = m.group(1).replace(",", "")
        return f"{whole}{m.group(2) or ''} dollars"

    def date(m):
        return f"{m.group(2)} {int(m.group(1))}, {m.group(3)}" if rng.random() < 0.6 else \
            f"{int(m.group(1)):02d}/{MONTHS.index(m.group(2)) + 1:02d}/{m.group(3)}"

    def clock(m):
        h, mi = int(m.group(1)), m.group(2)
        return f"{(h % 12) or 12}:{mi} {'am' if h < 12 else 'pm'}"

    s = re.sub(r"\$(\d{1,3}(?:,\d{3})*)(\.\d\d)?", money, s)
    s = re.sub(r"\b(\d{1,2}) (" + "|".join(MONTHS) + r") (\d{4})\b", date, s)
    s = re.sub(r"\b(\d{2}):(\d{2})\b", clock, s)
    s = re.sub(r"\b(\d+)%", r"\1 percent", s)
    s = re.sub(r"(?<![\d$,.])(\d{1,3}),(\d{3})\b", r"\1\2", s)
    s = re.sub(r"(?<=\s)(?:[2-9]|1\d|20)(?=\s)", _num_word, s)
    return s


def _swap_synonyms(s: str, rng: random.Random, p: float) -> str:
    def rep(m):
        if rng.random() >= p:
            return m.group(0)
        new = SYNONYMS[m.group(0).lower()]
        return new[0].upper() + new[1:] if m.group(0)[0].isupper() else new
    return _SYN_RE.sub(rep, s)


def _decap(s: str) -> str:
    first = s.split(" ", 1)[0]
    return s[0].lower() + s[1:] if first in _LOWERABLE else s


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


def _reorder(s: str, rng: random.Random) -> str:
    """Clause reordering: move an introductory phrase to the end, or swap the halves around ';'."""
    m = re.match(r"^((?:On|At|In|During|Effective|Under|After)\b[^,]{3,60}), (.+?)([.!?])$", s)
    if m:
        return f"{_cap(m.group(2))} {_decap(m.group(1))}{m.group(3)}"
    m = re.match(r"^(.+?); (.+?)([.!?])$", s)
    if m:
        return f"{_cap(m.group(2))}; {_decap(m.group(1))}{m.group(3)}"
    m = re.match(r"^(.{20,}?), (which|who) (.+?)([.!?])$", s)
    if m and rng.random() < 0.5:
        return f"{m.group(1)}. That {m.group(3)}{m.group(4)}"
    return s


_ADVERBS = ["also", "reportedly", "then", "in fact", "apparently", "indeed", "as noted"]


def _longest_run(a: str, b: str) -> tuple[int, int, int]:
    """(chars, first word index in a, words) of the longest common \\w+ run of a and b."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    best, prev = (0, 0, 0), [(0, 0)] * (len(wb) + 1)
    for i, x in enumerate(wa):
        cur = [(0, 0)] * (len(wb) + 1)
        for k, y in enumerate(wb):
            if x == y:
                chars, n = prev[k][0] + len(x) + 1, prev[k][1] + 1
                cur[k + 1] = (chars, n)
                if chars > best[0]:
                    best = (chars, i - n + 1, n)
        prev = cur
    return max(best[0] - 1, 0), best[1], best[2]


def break_long_runs(text: str, source: str, rng: random.Random, limit: int = 40) -> str:
    """Like a human rewriter, never keep more than `limit` characters of the source word for
    word: a synonym for, or an adverb before, a word in the middle of each long run."""
    for _ in range(12):
        chars, first, n = _longest_run(text, source)
        if chars <= limit:
            break
        tokens = list(re.finditer(r"\w+", text))
        m = tokens[first + n // 2]
        word = m.group(0)
        if word.lower() in SYNONYMS:
            new = SYNONYMS[word.lower()]
            text = text[:m.start()] + (new[0].upper() + new[1:] if word[0].isupper() else new) + text[m.end():]
        else:
            text = text[:m.start()] + rng.choice(_ADVERBS) + " " + text[m.start():]
    return text


def paraphrase_sentence(s: str, rng: random.Random) -> str:
    s = _reorder(s, rng)
    s = _swap_synonyms(s, rng, 0.85)
    s = _reformat_numbers(s, rng)
    if rng.random() < 0.25:
        s = rng.choice(OPENERS) + _decap(s)
    return s


def _near_copy(passage: str, rng: random.Random) -> str:
    words = passage.split(" ")
    for _ in range(max(2, len(words) // 12)):
        k = rng.randrange(len(words))
        w = words[k]
        core = w.strip(".,;:!?")
        r = rng.random()
        if re.fullmatch(r"\d+", core):
            words[k] = w.replace(core, str(int(core) + rng.randint(1, 9)))
        elif core.lower() in SYNONYMS and r < 0.7:
            words[k] = w.replace(core, SYNONYMS[core.lower()])
        elif len(words) > 8 and r < 0.6:
            del words[k]
        else:
            words[k] = w.replace(core, rng.choice(["the", "some", "a", "that", "this", "its"]))
    return " ".join(words)


def _keywords(s: str) -> list[str]:
    """Names in the fact (runs of capitalised words after the first word), else 'this matter'."""
    names = [m.group(0) for m in re.finditer(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", s) if m.start() > 0 and m.group(0) not in MONTHS]
    return names or ["this matter"]


RECAPS = ["To sum up, ", "In short, ", "Put simply, ", "The key point, then, is that ", "Once again: "]


def _elaborate(sentences: list[str], rng: random.Random) -> str:
    """Intro, then each fact restated with connective sentences around it, then a recap that
    restates the facts once more (the usual shape of an expanded answer)."""
    out = []
    for fact in sentences:
        kws = _keywords(fact)
        before, after = rng.randint(1, 2), rng.randint(2, 3)
        picks = rng.sample(CONNECTIVES, before + after)
        fill = [c.format(k1=rng.choice(kws), k2=rng.choice(kws)) for c in picks]
        out.extend(fill[:before] + [paraphrase_sentence(fact, rng)] + fill[before:])
    recap = " ".join(_decap(paraphrase_sentence(f, rng)).rstrip(".") + "." for f in sentences)
    out.append(rng.choice(RECAPS) + _decap(recap))
    return " ".join(out)


# ------------------------------------------------------------------ public
def make_generated_texts(corpus: list[dict], n: int = 600, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    other = generate_demo_corpus(max(240, len(corpus) // 4), seed + 1000)
    other_by_genre: dict[str, list[dict]] = {}
    for d in other:
        other_by_genre.setdefault(d["genre"], []).append(d)
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    rng.shuffle(kinds)
    out = []
    for i, kind in enumerate(kinds):
        doc = rng.choice(corpus)
        src: str | None = doc["doc_id"]
        if kind == "copy":
            # at least 120 characters: a shorter fragment that straddles a sentence boundary
            # cannot make a 50-character case on both sides (PLAGIARISM.md section 5), so the
            # published method (and the reference) do not type it at all
            text = _passage(rng, doc["text"], 120, 600, 0.25)
            if rng.random() < 0.3:
                text = rng.choice(FILLER) + " " + text
            if rng.random() < 0.3:
                text = text + " " + rng.choice(FILLER)
        elif kind == "near_copy":
            text = _near_copy(_passage(rng, doc["text"], 120, 500, 0.2), rng)
        elif kind in ("paraphrase", "elaboration"):
            sents = _body_sentences(doc["text"])
            k = rng.randint(2, 4) if kind == "paraphrase" else rng.randint(1, 2)
            s0 = rng.randrange(max(1, len(sents) - k + 1))
            chosen = sents[s0:s0 + k]
            if kind == "paraphrase":
                chosen = [paraphrase_sentence(s, rng) for s in chosen]
                if len(chosen) > 2 and rng.random() < 0.4:
                    a = rng.randrange(len(chosen) - 1)
                    chosen[a], chosen[a + 1] = chosen[a + 1], chosen[a]
                text = break_long_runs(" ".join(chosen), " ".join(sents[s0:s0 + k]), rng)
            else:
                text = break_long_runs(_elaborate(chosen, rng), " ".join(chosen), rng)
        else:
            pool = other if kind == "unrelated" else other_by_genre.get(doc["genre"], other)
            src = None if kind == "unrelated" else src
            text = _passage(rng, rng.choice(pool)["text"], 150, 600, 0.2)
        out.append({"id": f"gen-{seed}-{i:05d}", "text": text, "kind": kind, "source_doc_id": src})
    return out

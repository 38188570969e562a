"""The text side of `sim_to_corpus` (METRICS.md section 3): fine-tuning documents cut into
passages about a generation's length, and the passage of a document that a generation lines up
with.

Why passages: a whole document's embedding stands for everything the document says, so a
generation that copies 30 of its 200 words is compared with 170 words it never wrote, and the
embedder reads only a document's first 256 word pieces (all-MiniLM-L6-v2; every demo document
is longer). On the demo, exact copies of a 32-token suffix scored 0.36-0.61 against their own
document and three of six were nearest to another one. A window of the generation's length
is the unit a copy can match; the passage the generation lines up with (its longest common
run of words, placed at the same character offset) is the copied text itself when the
generation is an exact copy, whatever its first and last words were cut to, so an exact copy
scores 1."""

from __future__ import annotations

import re

import numpy as np

WINDOW_WORD = re.compile(r"\S+")  # a passage's words: whitespace-separated, punctuation kept
ALIGN_WORD = re.compile(r"\w+")  # the words a generation is lined up by


def windows(text: str, words: int, stride: int) -> list[tuple[int, int]]:
    """Character spans of the passages of `text`: `words` consecutive words starting every
    `stride` words, the last one ending at the text's last word (a text of fewer words is one
    passage; a text without words has none)."""
    spans = [(m.start(), m.end()) for m in WINDOW_WORD.finditer(text)]
    if not spans:
        return []
    last = max(len(spans) - words, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] < last:
        starts.append(last)
    return [(spans[i][0], spans[min(i + words, len(spans)) - 1][1]) for i in starts]


def aligned_span(gen: str, doc: str) -> tuple[int, int] | None:
    """The span of `doc` of the generation's length (in characters) that lines up with it: the
    longest common run of words (lowercased, `\\w+`) of the two texts placed at the same
    character offset in both, clipped to the document. An exact copy of a stretch of `doc`
    gets that stretch back, even when it starts or ends inside a word. None: no common word."""
    gw = [(m.group().lower(), m.start()) for m in ALIGN_WORD.finditer(gen)]
    dw = [(m.group().lower(), m.start()) for m in ALIGN_WORD.finditer(doc)]
    if not gw or not dw:
        return None
    ids: dict[str, int] = {}
    xg = np.array([ids.setdefault(w, len(ids)) for w, _ in gw])
    xd = np.array([ids.get(w, -1) for w, _ in dw])  # (-1: a word the generation lacks)
    prev = np.zeros(len(xd) + 1, dtype=np.int64)
    best, end = 0, (0, 0)
    for i, x in enumerate(xg):  # run lengths in words ending at (gen word i, doc word j - 1)
        cur = np.zeros_like(prev)
        cur[1:] = np.where(xd == x, prev[:-1] + 1, 0)
        j = int(cur.argmax())
        if cur[j] > best:
            best, end = int(cur[j]), (i, j)
        prev = cur
    if not best:
        return None
    g0, d0 = end[0] - best + 1, end[1] - best  # the run's first word on either side
    start = dw[d0][1] - gw[g0][1]
    start = min(max(start, 0), max(len(doc) - len(gen), 0))
    return start, min(start + len(gen), len(doc))

"""Clinical facts stated in a caption: side, modality, anatomy and findings (with negation).

N-gram metrics score "lesion on the left" and "lesion on the right" almost alike; a reviewer
does not. `fact_spans(text)` finds the words that state a fact, from the word lists in
`facts_data/` (see `medcap.metrics.facts_lexicon`), and returns each with its character span so
the app can shade fact words and mark contradicting ones. Rules, in brief:

- Longest phrase wins within a kind ("CT angiography" is one modality, not CT + angiography);
  kinds may overlap ("pleural effusion" is a finding and "pleural" anatomy).
- Phrases do not cross punctuation other than hyphens, slashes and apostrophes.
- A side abbreviation ("L", "R", "lt", "rt") counts only right before an anatomy word or
  "side(d)", optionally in parentheses ("L kidney", "(R) adrenal"): a bare "L" is mostly a
  figure label ("liver (L)", "(L) liver") or a vertebra ("L-3"), so a letter in parentheses
  next to a word with the same initial is a label. A full side word alone in parentheses,
  "(left)", is a panel of the figure, not the patient's side.
- A side word's subject is the nearest anatomy word in its clause (right first: "left
  kidney", then left: "kidney, left"); the comparison matches sides per subject.
- Negation follows NegEx (Chapman et al. 2001): a "before" trigger ("no", "no evidence of",
  "without") negates the facts after it until punctuation, a terminating word ("but",
  "however") or 8 words; a comma ends it unless a finding follows (a list of negated
  findings), and so does a side word after a negated finding ("no fracture and a left
  effusion"); an "after" trigger ("was excluded") negates back to the clause start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from medcap.metrics.facts_lexicon import Lexicon, Term, load_lexicon

#: Fact kinds whose words the app shades (the four compared kinds plus negation words).
SHADE_KINDS: tuple[str, ...] = ("laterality", "modality", "anatomy", "finding", "negation")
#: Words after a negation trigger that it can reach at most (NegEx's window, widened a little).
NEGATION_WINDOW = 8
#: How far (in words) a side word looks for its anatomy subject.
SUBJECT_WINDOW = 4

_GAP_AND_WORD = re.compile(r"([\W_]*)(\d+(?:[.,]\d+)+|[^\W_]+)")
_JOINER = re.compile(r"\s*|[-/\u2010\u2011'\u2019]|\s*/\s*")
_HARD_BREAK = re.compile(r"[.;:!?()\[\]{}\u2013\u2014=]|\s-\s")
#: Words whose following period abbreviates them rather than ending a sentence.
_PERIOD_ABBREVIATIONS = frozenset({"lt", "rt", "l", "r", "fig", "figs", "vs", "approx", "e", "g", "i", "no", "dr", "st", "ca"})
_SIDE_NOUNS = frozenset({"side", "sided", "sides"})


@dataclass(frozen=True, slots=True)
class FactSpan:
    """A fact stated by `text[start:end]`.

    kind: laterality | modality | anatomy | finding | negation. value: the canonical fact
    ("left", "MRI", "kidney", "pneumothorax", or the negation words). negated: inside a
    negation's scope. region: the anatomy region(s), "|"-joined. subject: for a side, the
    anatomy part it qualifies ("" if none in its clause). implied: a modality implied by a
    sequence or unit ("T2-weighted" -> MRI) rather than named.
    """

    start: int
    end: int
    kind: str
    value: str
    negated: bool = False
    region: str = ""
    subject: str = ""
    implied: bool = False


class _Words:
    """The caption's words as parallel lists: as written, lower-cased, character offsets, and
    `gap`, the characters between each word and the one before it."""

    __slots__ = ("text", "lower", "start", "end", "gap")

    def __init__(self, caption: str):
        pairs = _GAP_AND_WORD.findall(caption)
        self.gap = [gap for gap, _ in pairs]
        self.text = [word for _, word in pairs]
        self.lower = [word.lower() for word in self.text]
        self.start, self.end = [], []
        position = 0
        for index, (gap, word) in enumerate(pairs):
            position += len(gap)
            self.start.append(position)
            position += len(word)
            self.end.append(position)
            if index and gap.startswith(".") and self.lower[index - 1] in _PERIOD_ABBREVIATIONS:
                self.gap[index] = gap[1:]  # "Lt. kidney": the period abbreviates

    def __len__(self) -> int:
        return len(self.text)


class _Match:
    __slots__ = ("first", "last", "term")

    def __init__(self, first: int, last: int, term: Term):
        self.first, self.last, self.term = first, last, term  # word indexes, inclusive


def _joined(words: _Words, index: int) -> bool:
    """Whether word `index` continues a phrase from the word before it."""
    return _JOINER.fullmatch(words.gap[index]) is not None


def _hard_break(words: _Words, index: int) -> bool:
    return _HARD_BREAK.search(words.gap[index]) is not None


def _case_ok(term: Term, words: _Words, first: int) -> bool:
    if term.exact is None:
        return True
    written = words.text[first:first + len(term.exact)]
    return all(want == got or want.lower() == want for want, got in zip(term.exact, written))


def _raw_matches(words: _Words, lexicon: Lexicon) -> list[_Match]:
    """Longest phrase per kind at each word; a kind's match hides shorter ones inside it."""
    matches: list[_Match] = []
    covered: dict[str, int] = {}
    lowers = words.lower
    for first, lower in enumerate(lowers):
        longest = lexicon.longest.get(lower, 0)
        if not longest:
            continue
        seen_kinds: set[str] = set()
        limit = first + 1
        while limit < len(words) and limit - first < longest and _joined(words, limit):
            limit += 1
        for last in range(limit - 1, first - 1, -1):
            key = tuple(lowers[first:last + 1])
            for term in lexicon.lookup(key):
                if term.kind in seen_kinds or covered.get(term.kind, -1) >= first or not _case_ok(term, words, first):
                    continue
                seen_kinds.add(term.kind)
                covered[term.kind] = last
                matches.append(_Match(first, last, term))
    return matches


def _in_lone_parentheses(text: str, words: _Words, index: int) -> bool:
    return words.gap[index].rstrip().endswith("(") and text[words.end[index]:].lstrip().startswith(")")


def _side_in_context(words: _Words, match: _Match, anatomy_starts: set[int]) -> bool:
    """A side abbreviation counts only before an anatomy word or 'side' ("L kidney", "(R) adrenal")."""
    first, following = match.first, match.last + 1
    before = words.gap[first]
    if following >= len(words) or (first and not before[-1:].isspace() and not before.endswith("(")):
        return False  # "GG/L", "L-3"
    gap = words.gap[following]
    if before.rstrip().endswith("(") and gap.startswith(")"):
        letter = words.lower[first][0]
        neighbours = ([words.lower[first - 1]] if first else []) + [words.lower[following]]
        if any(word.startswith(letter) for word in neighbours):
            return False  # a figure label: "lumbar (L)", "(L) liver"
        gap = gap[1:]
    if not gap or not gap.isspace():
        return False
    return following in anatomy_starts or words.lower[following] in _SIDE_NOUNS


def _keep(text: str, words: _Words, match: _Match, anatomy_starts: set[int]) -> bool:
    term = match.term
    if term.kind != "laterality":
        return True
    if term.value == "none":
        return False
    if term.context == "anatomy":
        return _side_in_context(words, match, anatomy_starts)
    return not (match.first == match.last and _in_lone_parentheses(text, words, match.first))


def _negated_words(words: _Words, matches: list[_Match]) -> tuple[set[int], list[_Match]]:
    """Word indexes inside a negation scope, and the trigger matches that made them."""
    negations = [m for m in matches if m.term.kind == "negation"]
    ends = {m.first for m in negations if m.term.detail == "end"}
    finding_starts = {m.first for m in matches if m.term.kind == "finding"}
    side_starts = {m.first for m in matches if m.term.kind == "laterality"}
    negated: set[int] = set()
    triggers = []
    for match in negations:
        role = match.term.detail
        if role == "before":
            triggers.append(match)
            index, found = match.last + 1, False
            while index < len(words) and index - match.last <= NEGATION_WINDOW and index not in ends:
                if _hard_break(words, index) or ("," in words.gap[index] and index not in finding_starts):
                    break
                if found and index in side_starts:
                    break  # "no fracture and a left effusion": a new side starts a new statement
                found = found or index in finding_starts
                negated.add(index)
                index += 1
        elif role == "after":
            triggers.append(match)
            index = match.first - 1
            while index >= 0 and match.first - index <= NEGATION_WINDOW and index not in ends:
                negated.add(index)
                if _hard_break(words, index) or "," in words.gap[index]:
                    break
                index -= 1
    return negated, triggers


def _subject(words: _Words, side: _Match, anatomy: list[_Match]) -> _Match | None:
    """The anatomy phrase holding the side word, else the nearest in its clause: right first, then left."""
    def clause_clear(lo: int, hi: int) -> bool:
        return not any(_hard_break(words, i) for i in range(lo + 1, hi + 1))

    within = [a for a in anatomy if a.first <= side.first <= a.last]  # "right coronary artery"
    if within:
        return max(within, key=lambda a: a.last - a.first)
    right = [a for a in anatomy if side.last < a.first <= side.last + SUBJECT_WINDOW and clause_clear(side.last, a.first)]
    if right:
        return min(right, key=lambda a: a.first)
    left = [a for a in anatomy if side.first - SUBJECT_WINDOW <= a.last < side.first and clause_clear(a.last, side.first)]
    return max(left, key=lambda a: a.last) if left else None


def _spans(text: str, lexicon: Lexicon) -> tuple[FactSpan, ...]:
    words = _Words(text)
    matches = _raw_matches(words, lexicon)
    anatomy = [m for m in matches if m.term.kind == "anatomy"]
    anatomy_starts = {m.first for m in anatomy}
    kept = [m for m in matches if _keep(text, words, m, anatomy_starts)]
    negated, triggers = _negated_words(words, kept)
    trigger_set = {id(t) for t in triggers}
    spans = []
    for match in kept:
        term = match.term
        if term.kind == "negation" and id(match) not in trigger_set:
            continue  # pseudo-negations and scope ends are not facts
        start, end = words.start[match.first], words.end[match.last]
        subject = _subject(words, match, anatomy) if term.kind == "laterality" else None
        spans.append(FactSpan(
            start=start, end=end, kind=term.kind, value=term.value,
            negated=term.kind != "negation" and match.first in negated,
            region=term.detail if term.kind == "anatomy" else (subject.term.detail if subject else ""),
            subject=subject.term.value if subject else "",
            implied=term.kind == "modality" and term.detail == "implied",
        ))
    return tuple(sorted(spans, key=lambda s: (s.start, s.end, s.kind)))


@lru_cache(maxsize=32_768)  # evaluate scores each model against the same references
def _cached_spans(text: str) -> tuple[FactSpan, ...]:
    return _spans(text, load_lexicon())


def fact_spans(text: str) -> list[FactSpan]:
    """Every fact `text` states, in reading order, with character spans into `text`."""
    if not isinstance(text, str) or not text.strip():
        return []
    return list(_cached_spans(text))

"""The fact word lists (`facts_data/*.tsv`) loaded into one phrase table.

The lists are plain tab-separated files a radiologist can read and extend; each starts with a
comment header that says where its words come from and what each column means. This module
owns their format: words are lower-cased and split at spaces, hyphens and slashes, so
"T2-weighted", "T2 weighted" and "t2/weighted" are one phrase.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator

#: Kinds of fact a caption can state (the order the comparison reports them in).
FACT_KINDS: tuple[str, ...] = ("laterality", "modality", "anatomy", "finding")
#: Negation roles in negation.tsv.
NEGATION_ROLES: tuple[str, ...] = ("before", "after", "pseudo", "end")
LATERALITY_VALUES: tuple[str, ...] = ("left", "right", "bilateral", "none")

_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")


class LexiconError(ValueError):
    """A fact list has a malformed row; the message names the file and line."""


@dataclass(frozen=True)
class Term:
    """One row of a fact list: the phrase means `value` of `kind`.

    `exact` holds the words whose case must match as written ("US", "L"), or None.
    `detail` is the anatomy region(s), the negation role, or "implied" for a modality
    implied by a sequence; `context` is "anatomy" for side words that count only before one.
    """

    kind: str
    value: str
    words: tuple[str, ...]
    exact: tuple[str, ...] | None = None
    detail: str = ""
    context: str = "any"


@dataclass(frozen=True)
class Lexicon:
    """Every phrase of every list, keyed by its lower-case words, plus modality agreement."""

    phrases: dict[tuple[str, ...], tuple[Term, ...]]
    longest: dict[str, int]  # first word -> longest phrase starting with it
    modality_bases: dict[str, frozenset[str]]

    def lookup(self, words: tuple[str, ...]) -> tuple[Term, ...]:
        return self.phrases.get(words, ())


def phrase_words(text: str) -> tuple[str, ...]:
    """The lower-case words of a phrase as the matcher sees them ("Left-sided" -> left, sided)."""
    return tuple(match.group().lower() for match in _WORD.finditer(text))


def _rows(name: str) -> Iterator[tuple[int, dict[str, str]]]:
    text = resources.files("medcap.metrics").joinpath("facts_data", name).read_text(encoding="utf-8")
    return parse_rows(name, text)


def parse_rows(name: str, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Data rows of a list with their line numbers; '#' lines are comments, the first other
    line names the columns. A short or empty cell is a LexiconError naming file and line."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise LexiconError(f"{name} has no header row")
    header = lines[0][1].split("\t")
    for number, line in lines[1:]:
        cells = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(cells) != len(header) or not all(cell.strip() for cell in cells):
            raise LexiconError(f"{name} line {number}: expected {len(header)} non-empty columns {header}, got {cells}")
        yield number, {key: cell.strip() for key, cell in zip(header, cells)}


def _exact_words(term: str, case: str) -> tuple[str, ...] | None:
    if case == "any":
        return None
    if case != "exact":
        raise ValueError(f"case must be 'any' or 'exact', not {case!r}")
    return tuple(match.group() for match in _WORD.finditer(term))


def _terms(name: str, kind: str, value_key: str, detail_key: str | None = None,
           allowed: tuple[str, ...] | None = None) -> Iterator[Term]:
    for number, row in _rows(name):
        words = phrase_words(row["term"])
        value = row[value_key]
        try:
            if not words:
                raise ValueError(f"term {row['term']!r} has no words")
            if allowed is not None and value not in allowed:
                raise ValueError(f"{value_key} must be one of {allowed}, not {value!r}")
            exact = _exact_words(row["term"], row.get("case", "any"))
            context = row.get("context", "any")
            if context not in ("any", "anatomy"):
                raise ValueError(f"context must be 'any' or 'anatomy', not {context!r}")
        except ValueError as exc:
            raise LexiconError(f"{name} line {number}: {exc}") from None
        detail = row[detail_key] if detail_key else ""
        yield Term(kind, value, words, exact, detail, context)


def _modality_bases() -> dict[str, frozenset[str]]:
    return {row["modality"]: frozenset(row["bases"].split()) for _, row in _rows("modality_groups.tsv")}


def _all_terms() -> Iterator[Term]:
    yield from _terms("laterality.tsv", "laterality", "side", allowed=LATERALITY_VALUES)
    yield from _terms("modality.tsv", "modality", "modality", "how")
    yield from _terms("anatomy.tsv", "anatomy", "anatomy", "region")
    yield from _terms("findings.tsv", "finding", "finding")
    for term in _terms("negation.tsv", "negation", "role", allowed=NEGATION_ROLES):
        yield Term("negation", " ".join(term.words), term.words, detail=term.value)


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """All lists, read once per process. Raises LexiconError on a malformed or clashing row."""
    bases = _modality_bases()
    phrases: dict[tuple[str, ...], list[Term]] = {}
    for term in _all_terms():
        if term.kind == "modality" and term.value not in bases:
            raise LexiconError(f"modality.tsv: {term.value!r} is missing from modality_groups.tsv")
        same = [t for t in phrases.get(term.words, []) if t.kind == term.kind and t.exact == term.exact]
        if same:
            raise LexiconError(f"{term.kind} phrase {' '.join(term.words)!r} is listed twice")
        phrases.setdefault(term.words, []).append(term)
    longest: dict[str, int] = {}
    for words in phrases:
        longest[words[0]] = max(longest.get(words[0], 0), len(words))
    return Lexicon({k: tuple(v) for k, v in phrases.items()}, longest, bases)

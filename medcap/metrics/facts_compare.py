"""Compare the facts of a generated caption with its reference: contradictions and fact F1.

A fact the reference does not mention is never a contradiction. Per kind:

- laterality: each side word of the generated caption is checked against the reference's
  side words for the same anatomy subject (else the same region, else all of them). It
  contradicts when none agrees. "bilateral" agrees with a caption that names both sides and
  with nothing else: "left" for a bilateral finding misses a side and "bilateral" for a
  one-sided finding invents one, and both are the error reviewers file as wrong laterality.
- modality: the generated modalities contradict when none agrees with any reference modality
  (agreement: `facts_data/modality_groups.tsv`, e.g. PET-CT agrees with CT). Lenient on purpose:
  a composite figure may show CT and MRI.
- anatomy: compared by region; the captions contradict when their regions share none (a chest
  caption for a knee image). Region-less parts (bone, skin) and "whole body" never do.
- finding: a finding one caption states and the other denies ("pneumothorax" vs "no
  pneumothorax"); one that both state and deny somewhere is left alone.

Fact precision / recall / F1 count only the kinds the reference states (the facts both could
state), so a generated modality is not penalised when the reference names none; all three are
NaN when the reference states no fact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from medcap.metrics.facts import FactSpan, fact_spans
from medcap.metrics.facts_lexicon import FACT_KINDS, load_lexicon

#: The review error category each contradiction kind suggests (keys of medcap.review.categories).
CONTRADICTION_CATEGORIES: dict[str, str] = {
    "laterality": "wrong_laterality",
    "modality": "wrong_modality",
    "anatomy": "wrong_anatomy",
}
#: A negated-finding contradiction: generated denies what the reference states / states what it denies.
MISSED_FINDING, HALLUCINATED_FINDING = "missed_finding", "hallucinated_finding"
_SIDES = frozenset({"left", "right"})
_ANYWHERE = ("-", "whole body")


@dataclass(frozen=True)
class Contradiction:
    """One kind of disagreement: what the generated caption says vs what the reference says."""

    kind: str
    generated: str
    reference: str
    spans: tuple[FactSpan, ...]  # the generated caption's contradicting words
    category: str  # review error category key

    def __str__(self) -> str:
        return f"{self.kind}: {self.generated} vs {self.reference}"


@dataclass(frozen=True)
class FactComparison:
    """Contradictions and fact scores of one (generated, reference) pair."""

    contradictions: tuple[Contradiction, ...]
    precision: float
    recall: float
    f1: float

    @property
    def summary(self) -> str:
        """'laterality: right vs left; modality: MRI vs CT', or '' when nothing contradicts."""
        return "; ".join(str(c) for c in self.contradictions)

    @property
    def kinds(self) -> set[str]:
        return {c.kind for c in self.contradictions}


def _of(spans: Iterable[FactSpan], kind: str) -> list[FactSpan]:
    return [s for s in spans if s.kind == kind]


def _joined(values: Iterable[str]) -> str:
    return "/".join(dict.fromkeys(values))


# -- laterality ---------------------------------------------------------------------------------

def _regions(region: str) -> set[str]:
    return {r for r in region.split("|") if r and r not in _ANYWHERE}


def _side_scope(side: FactSpan, reference: list[FactSpan]) -> list[FactSpan]:
    """The reference sides to check `side` against: same subject, else the same region plus
    the sides whose subject is unknown (they may be about anything), else all."""
    if side.subject:
        same = [r for r in reference if r.subject == side.subject]
        if same:
            return same
        near = [r for r in reference if not r.subject or _regions(r.region) & _regions(side.region)]
        if near:
            return near
    return reference


def _side_agrees(side: FactSpan, own_sides: set[str], reference_sides: set[str]) -> bool:
    if side.value in reference_sides:
        return True
    if side.value == "bilateral":
        return _SIDES <= reference_sides
    return "bilateral" in reference_sides and _SIDES <= own_sides


def _laterality(generated: list[FactSpan], reference: list[FactSpan]) -> Contradiction | None:
    gen, ref = _of(generated, "laterality"), _of(reference, "laterality")
    if not gen or not ref:
        return None
    wrong: list[tuple[FactSpan, set[str]]] = []
    for side in gen:
        own = {g.value for g in gen if g.subject == side.subject}
        scope = {r.value for r in _side_scope(side, ref)}
        if not _side_agrees(side, own, scope):
            wrong.append((side, scope))
    if not wrong:
        return None
    said = _joined(s.value for s, _ in wrong)
    expected = _joined(v for _, scope in wrong for v in sorted(scope))
    return Contradiction("laterality", said, expected, tuple(s for s, _ in wrong), CONTRADICTION_CATEGORIES["laterality"])


# -- modality -----------------------------------------------------------------------------------

def modalities_agree(a: str, b: str) -> bool:
    """Whether two canonical modality names can describe the same image (PET-CT and CT can)."""
    bases = load_lexicon().modality_bases
    return bool(bases.get(a, {a}) & bases.get(b, {b}))


def _modality(generated: list[FactSpan], reference: list[FactSpan]) -> Contradiction | None:
    gen, ref = _of(generated, "modality"), _of(reference, "modality")
    if not gen or not ref:
        return None
    if any(modalities_agree(g.value, r.value) for g in gen for r in ref):
        return None
    return Contradiction("modality", _joined(g.value for g in gen), _joined(r.value for r in ref),
                         tuple(gen), CONTRADICTION_CATEGORIES["modality"])


# -- anatomy ------------------------------------------------------------------------------------

def _anatomy(generated: list[FactSpan], reference: list[FactSpan]) -> Contradiction | None:
    gen, ref = _of(generated, "anatomy"), _of(reference, "anatomy")
    if any("whole body" in s.region for s in gen + ref):
        return None
    gen_regions = set().union(*(_regions(s.region) for s in gen)) if gen else set()
    ref_regions = set().union(*(_regions(s.region) for s in ref)) if ref else set()
    if not gen_regions or not ref_regions or gen_regions & ref_regions:
        return None
    spans = tuple(s for s in gen if _regions(s.region))
    return Contradiction("anatomy", _joined(sorted(gen_regions)), _joined(sorted(ref_regions)), spans,
                         CONTRADICTION_CATEGORIES["anatomy"])


# -- findings -----------------------------------------------------------------------------------

def _polarities(spans: list[FactSpan]) -> dict[str, set[bool]]:
    found: dict[str, set[bool]] = {}
    for span in spans:
        found.setdefault(span.value, set()).add(span.negated)
    return found


def _findings(generated: list[FactSpan], reference: list[FactSpan]) -> list[Contradiction]:
    gen_spans = _of(generated, "finding")
    gen, ref = _polarities(gen_spans), _polarities(_of(reference, "finding"))
    result = []
    for value, polarity in gen.items():
        if value not in ref or len(polarity) > 1 or len(ref[value]) > 1 or polarity == ref[value]:
            continue
        denies = True in polarity
        said, expected = (f"no {value}", value) if denies else (value, f"no {value}")
        spans = tuple(s for s in gen_spans if s.value == value)
        result.append(Contradiction("finding", said, expected, spans, MISSED_FINDING if denies else HALLUCINATED_FINDING))
    return result


# -- scores -------------------------------------------------------------------------------------

def _keys(spans: list[FactSpan], kinds: set[str]) -> set[tuple[str, str]]:
    keys = set()
    for span in spans:
        if span.kind in kinds:
            keys.add((span.kind, f"no {span.value}" if span.kind == "finding" and span.negated else span.value))
    return keys


def _matches(key: tuple[str, str], others: set[tuple[str, str]]) -> bool:
    if key in others:
        return True
    return key[0] == "modality" and any(k == "modality" and modalities_agree(key[1], v) for k, v in others)


def _scores(generated: list[FactSpan], reference: list[FactSpan]) -> tuple[float, float, float]:
    kinds = {s.kind for s in reference if s.kind in FACT_KINDS}
    ref = _keys(reference, kinds)
    if not ref:
        return math.nan, math.nan, math.nan
    gen = _keys(generated, kinds)
    recall = sum(_matches(k, gen) for k in ref) / len(ref)
    precision = sum(_matches(k, ref) for k in gen) / len(gen) if gen else math.nan
    f1 = 0.0 if not gen or precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def compare_spans(generated: Sequence[FactSpan], reference: Sequence[FactSpan]) -> FactComparison:
    """Contradictions (in FACT_KINDS order) and fact scores of two captions' facts."""
    gen, ref = list(generated), list(reference)
    found = [c for c in (_laterality(gen, ref), _modality(gen, ref), _anatomy(gen, ref)) if c is not None]
    found += _findings(gen, ref)
    return FactComparison(tuple(found), *_scores(gen, ref))


def compare_facts(generated: str, reference: str) -> FactComparison:
    """Compare the facts `generated` states with those `reference` states."""
    return compare_spans(fact_spans(generated), fact_spans(reference))


def fact_contradictions(generated: str, reference: str) -> str:
    """'laterality: right vs left; modality: MRI vs CT', or '' when nothing contradicts."""
    return compare_facts(generated, reference).summary


def contradicting_spans(generated: str, reference: str) -> list[FactSpan]:
    """The words of `generated` that contradict `reference` (to mark in red), in reading order."""
    spans = {s for c in compare_facts(generated, reference).contradictions for s in c.spans}
    return sorted(spans, key=lambda s: (s.start, s.end))


def suggested_categories(generated: str, reference: str) -> list[str]:
    """Review error category keys the contradictions suggest (the reviewer confirms them)."""
    return list(dict.fromkeys(c.category for c in compare_facts(generated, reference).contradictions))

"""METEOR exactly as nltk 3.10's `meteor_score` computes it, with the slow parts cached.

nltk aligns words in three stages (exact, Porter stem, WordNet synonym), each matching a
hypothesis word, from the last one backwards, to the last still-free reference word, then scores
F-mean (alpha 0.9) with a fragmentation penalty. Its cost is the stemmer and WordNet look-ups
repeated for every pair; caching them per distinct word makes a corpus cheap. Note the nltk
detail we reproduce: the synonym stage looks up the *stems* left over from the stem stage.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from medcap.metrics.config import MeteorConfig


class MeteorScorer:
    """Scores token lists with nltk's METEOR; reuse one instance to keep its caches warm."""

    def __init__(self, wordnet, config: MeteorConfig = MeteorConfig()) -> None:
        from nltk.stem.porter import PorterStemmer

        self.config = config
        self._wordnet = wordnet
        self._stemmer = PorterStemmer()
        self._stems: dict[str, str] = {}
        self._synonyms: dict[str, frozenset[str]] = {}

    def _stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            stem = self._stems[word] = self._stemmer.stem(word)
        return stem

    def _synonyms_of(self, word: str) -> frozenset[str]:
        synonyms = self._synonyms.get(word)
        if synonyms is None:
            names = {
                lemma.name()
                for synset in self._wordnet.synsets(word)
                for lemma in synset.lemmas()
                if "_" not in lemma.name()
            }
            names.add(word)
            synonyms = self._synonyms[word] = frozenset(names)
        return synonyms

    @staticmethod
    def _match_exact(hyp: list, ref: list, matches: list) -> tuple[list, list]:
        positions = defaultdict(list)
        for j, (_, word) in enumerate(ref):
            positions[word].append(j)
        used_hyp, used_ref = set(), set()
        for i in range(len(hyp) - 1, -1, -1):
            free = positions.get(hyp[i][1])
            if free:
                j = free.pop()
                used_hyp.add(i)
                used_ref.add(j)
                matches.append((hyp[i][0], ref[j][0]))
        return ([p for i, p in enumerate(hyp) if i not in used_hyp], [p for j, p in enumerate(ref) if j not in used_ref])

    def _match_synonyms(self, hyp: list, ref: list, matches: list) -> None:
        positions = defaultdict(list)
        for j, (_, word) in enumerate(ref):
            positions[word].append(j)
        for i in range(len(hyp) - 1, -1, -1):
            best_j, best_word = -1, None
            for synonym in self._synonyms_of(hyp[i][1]):
                free = positions.get(synonym)
                if free and free[-1] > best_j:
                    best_j, best_word = free[-1], synonym
            if best_word is not None:
                positions[best_word].pop()
                matches.append((hyp[i][0], ref[best_j][0]))

    def score(self, reference: Sequence[str], hypothesis: Sequence[str]) -> float:
        """nltk.translate.meteor_score.single_meteor_score(reference, hypothesis)."""
        hyp = [(i, word.lower()) for i, word in enumerate(hypothesis)]
        ref = [(j, word.lower()) for j, word in enumerate(reference)]
        if not hyp or not ref:
            return 0.0
        matches: list[tuple[int, int]] = []
        hyp, ref = self._match_exact(hyp, ref, matches)
        if hyp and ref:
            hyp, ref = self._match_exact([(i, self._stem(w)) for i, w in hyp], [(j, self._stem(w)) for j, w in ref], matches)
            if hyp and ref:
                self._match_synonyms(hyp, ref, matches)
        if not matches:
            return 0.0
        matches.sort(key=lambda pair: pair[0])
        chunks = 1
        for (h0, r0), (h1, r1) in zip(matches, matches[1:]):
            if not (h1 == h0 + 1 and r1 == r0 + 1):
                chunks += 1
        count = float(len(matches))
        precision = count / len(hypothesis)
        recall = count / len(reference)
        alpha, beta, gamma = self.config.alpha, self.config.beta, self.config.gamma
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        penalty = gamma * (float(chunks) / count) ** beta
        return (1 - penalty) * fmean

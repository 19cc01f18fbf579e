"""Words a candidate shares with its reference, for highlighting in the app."""

from __future__ import annotations

from medcap.metrics.tokenize import coco_tokenize


def shared_words(candidate: str, reference: str) -> set[str]:
    """Lower-cased tokens (punctuation dropped, as the metrics see them) found in both captions."""
    return set(coco_tokenize(candidate)) & set(coco_tokenize(reference))

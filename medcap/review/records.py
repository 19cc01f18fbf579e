"""What a review is: the reviewer's input, the stored row, its history, and the errors a save can raise.

A review belongs to one reviewer for one model's caption of one image in one dataset:
``(dataset, image_id, model, reviewer)``. Two clinicians reviewing the same caption each keep their
own review (that is what inter-rater comparison needs), so they never compete for one row. The same
reviewer editing from two browser tabs does compete, and the version number guards that case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

VERDICTS: tuple[str, ...] = ("correct", "minor error", "major error", "unusable")
"""The verdict scale shown to reviewers, best first."""

PREFERENCE_CHOICES: tuple[str, ...] = ("A better", "B better", "tie", "both wrong")
"""Pairwise (arena) judgements of two captions of the same image."""

STATUS_DRAFT = "draft"
STATUS_FINAL = "final"


@dataclass(frozen=True)
class ReviewLimits:
    """Bounds on free text so a pasted report cannot bloat the database or the export."""

    max_reviewer_chars: int = 80
    max_key_chars: int = 200  # dataset, image id, model: real ids are short; a 10 MB id is abuse
    max_caption_chars: int = 4000
    max_note_chars: int = 4000


@dataclass(frozen=True)
class ReviewKey:
    """Identifies one reviewer's review of one model caption."""

    dataset: str
    image_id: str
    model: str
    reviewer: str


@dataclass(frozen=True)
class ReviewContext:
    """What the reviewer was looking at, kept with the review so exports stand on their own."""

    generated_caption: str = ""
    ground_truth: str = ""
    modality: str = ""
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewInput:
    """A save request as it comes from the UI; ``base_version`` is the version the reviewer saw
    (0 when they saw no earlier review)."""

    key: ReviewKey
    verdict: str | None = None
    corrected_caption: str = ""
    note: str = ""
    base_version: int = 0
    context: ReviewContext = field(default_factory=ReviewContext)
    categories: tuple[str, ...] = ()
    significant: bool = False


@dataclass(frozen=True)
class Review:
    """A review as stored: the latest version of one key."""

    key: ReviewKey
    verdict: str | None
    corrected_caption: str
    note: str
    status: str
    version: int
    created_at: str
    updated_at: str
    context: ReviewContext
    categories: tuple[str, ...] = ()
    significant: bool = False

    @property
    def is_draft(self) -> bool:
        return self.status == STATUS_DRAFT

    def summary(self) -> str:
        """One line a reviewer can read in a conflict or status message."""
        verdict = self.verdict or "no verdict yet (draft)"
        parts = [f"verdict: {verdict}"]
        if self.categories:
            parts.append("errors: " + ", ".join(self.categories))
        if self.significant:
            parts.append("clinically significant")
        if self.corrected_caption:
            parts.append(f'corrected caption: "{self.corrected_caption}"')
        if self.note:
            parts.append(f'note: "{self.note}"')
        return "; ".join(parts)


@dataclass(frozen=True)
class ReviewRevision:
    """One saved version in a review's edit history."""

    version: int
    verdict: str | None
    corrected_caption: str
    note: str
    status: str
    saved_at: str
    categories: tuple[str, ...] = ()
    significant: bool = False


@dataclass(frozen=True)
class Preference:
    """One reviewer's pairwise judgement of two models' captions of one image.

    Stored with the pair in name order (``model_a < model_b``); a choice given for the other
    order is flipped, so one pair has one row whatever order the cards were shown in."""

    dataset: str
    image_id: str
    model_a: str
    model_b: str
    reviewer: str
    choice: str
    saved_at: str


@dataclass(frozen=True)
class SaveOutcome:
    """The stored review plus a message for the reviewer (draft saves explain what is missing)."""

    review: Review
    message: str


class ReviewError(ValueError):
    """Base class: every message is written for the reviewer, not the developer."""


class ReviewValidationError(ReviewError):
    """The input cannot be saved as it is (no name, unknown verdict, nothing entered, too long)."""


class ReviewConflict(ReviewError):
    """The review changed since the reviewer opened it; their save was refused, nothing was lost."""

    def __init__(self, current: Review, base_version: int):
        self.current = current
        self.base_version = base_version
        super().__init__(
            f"Not saved: this review was changed elsewhere (by {current.key.reviewer}, "
            f"version {current.version} saved at {current.updated_at}; you were editing "
            f"version {base_version}). The saved text is: {current.summary()}. "
            "Reload the item to see it, then apply your changes again."
        )

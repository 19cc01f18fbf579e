"""Turn `Studio` results into the plain values Gradio components take (no gradio import here).

Keeping this apart from `app.py` lets tests check what each widget receives without a browser.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from medcap.app.cards import (
    caption_card_html,
    caption_row_html,
    ground_truth_html,
    history_html,
    metadata_html,
    other_reviews_html,
    status_html,
)
from medcap.app.highlight import HighlightStyle
from medcap.app.studio import ItemView, ReviewSlot, UploadResult
from medcap.app.table import TablePage
from medcap.review import Review, ReviewConflict, ReviewError, SaveOutcome


@dataclass(frozen=True)
class SlotValues:
    """What one model's review column shows: card, the reviewer's saved fields, status line.
    `model` stays on the server (a gr.State); `label` is what the page may show of it."""

    card_html: str
    verdict: str | None
    corrected_caption: str
    note: str
    version: int
    status: str
    suggested_categories: tuple[str, ...] = ()
    """Error category keys the fact check suggests; the form pre-ticks them when the reviewer
    has no saved review of this caption (a saved review's own categories win)."""
    model: str = ""
    label: str = ""
    categories: tuple[str, ...] = ()
    significant: bool = False


@dataclass(frozen=True)
class ItemValues:
    """What opening one item shows: its id, image, ground-truth HTML and one slot per model."""

    image_id: str
    image: Any
    truth_html: str
    slots: tuple[SlotValues, ...]
    collection: str = ""
    blind: bool = False


def upload_values(result: UploadResult) -> tuple[Any, str, str, list[dict[str, Any]]]:
    """(preview image, metadata HTML, caption cards HTML, captions as JSON for API clients)."""
    captions = [{"model": c.model, "caption": c.caption, "seconds": c.seconds, "error": c.error}
                for c in result.cards]
    metadata = dict(result.metadata)
    if result.source_format:
        metadata = {"Format": result.source_format, **metadata}
    return (result.preview, metadata_html(metadata), caption_row_html(result.cards, result.style),
            captions)


def _review_status(review: Review | None) -> str:
    if review is None:
        return ""
    kind = "Draft" if review.is_draft else "Saved review"
    return status_html(f"{kind}, version {review.version}, {review.updated_at}.")


def slot_values(slot: ReviewSlot, labels: dict[str, str] | None = None,
                style: HighlightStyle = HighlightStyle()) -> SlotValues:
    """One review column's values; `labels` names the suggested categories (key -> label)."""
    review = slot.review
    suggested = [(labels or {}).get(key, key) for key in slot.suggested_categories]
    card = caption_card_html(slot.card, highlight=True, show_scores=True, style=style,
                             suggested=suggested)
    return SlotValues(
        card_html=card + other_reviews_html(slot.others) + history_html(slot.history),
        verdict=review.verdict if review else None,
        corrected_caption=review.corrected_caption if review else "",
        note=review.note if review else "",
        version=review.version if review else 0,
        status=_review_status(review),
        suggested_categories=tuple(slot.suggested_categories),
        model=slot.model,
        label=slot.label or slot.model,
        categories=tuple(review.categories) if review else (),
        significant=bool(review.significant) if review else False,
    )


def item_values(view: ItemView) -> ItemValues:
    """The opened item's values, by name; the Compare tab maps each to its component."""
    truth = ground_truth_html(view.image_id, view.ground_truth, view.modality)
    if view.image_note:
        truth += f'<div class="mc-meta">{html.escape(view.image_note)}</div>'
    return ItemValues(view.image_id, view.image, truth,
                      tuple(slot_values(slot, view.category_labels, view.style)
                            for slot in view.slots), view.collection, view.blind)


def save_values(result: SaveOutcome | ReviewError, base_version: int) -> tuple[int, str]:
    """(version to keep editing from, status HTML) after a save attempt; the message (which may
    quote another reviewer's text) is escaped, never rendered as Markdown or HTML."""
    if isinstance(result, SaveOutcome):
        return result.review.version, status_html("✅ " + result.message, "ok")
    if isinstance(result, ReviewConflict):
        return base_version, status_html("⚠️ " + str(result), "warning")
    return base_version, status_html("❌ " + str(result), "error")


def review_dict(review: Review | None) -> dict[str, Any]:
    """A review as JSON for the API endpoints."""
    if review is None:
        return {"found": False, "version": 0}
    return {"found": True, "verdict": review.verdict, "corrected_caption": review.corrected_caption,
            "note": review.note, "reviewer": review.key.reviewer, "version": review.version,
            "status": review.status, "updated_at": review.updated_at,
            "categories": list(review.categories), "significant": review.significant,
            "collection": review.key.dataset}


def page_values(page: TablePage) -> tuple[pd.DataFrame, str, int]:
    """(rows for the Dataframe, 'Rows a–b of n' label, the page actually shown)."""
    return page.rows, page.label, page.page

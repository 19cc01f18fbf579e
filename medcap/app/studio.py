"""Everything the UI does, without the UI: `app.py` only turns these results into components.

A `Studio` holds the model pool, the review store, the comparison set and the scores, and is
safe to call from Gradio's worker threads. Slow things (dataset sample, scoring, model weights)
happen on first use, so building the page stays fast.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from PIL import Image

from medcap.app.cards import CaptionCard
from medcap.app.comparison import ComparisonSet, build_comparison_set
from medcap.app.highlight import HighlightStyle
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.scores import ScoreBook, shared_words
from medcap.app.table import EvaluationTable, TablePage, TableQuery, histogram
from medcap.app.tempfiles import discard_upload, gradio_temp_dir, prune_exports, was_discarded
from medcap.data import ImageLoadError, LoaderConfig, load_image
from medcap.review import (
    VERDICTS,
    Review,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewRevision,
    ReviewStore,
    SaveOutcome,
    export_store_csv,
    load_categories,
)
from medcap.results import read_evaluation_csv, read_results_csv
from medcap.review.analytics import store_stats

Progress = Callable[[float, str], None]


class UploadError(ValueError):
    """An upload that cannot be shown or captioned; the message is for the user."""


@dataclass
class UploadResult:
    preview: Image.Image
    metadata: dict[str, str]
    cards: list[CaptionCard]
    source_format: str
    style: HighlightStyle = field(default_factory=HighlightStyle)


@dataclass
class ReviewSlot:
    """One model's caption card plus the reviewer's saved review and others' verdicts."""

    model: str
    card: CaptionCard
    review: Review | None
    others: list[tuple[str, str]] = field(default_factory=list)
    history: list[ReviewRevision] = field(default_factory=list)
    suggested_categories: tuple[str, ...] = ()
    """Error category keys the fact check suggests (contradictions with the ground truth)."""


@dataclass
class ItemView:
    image_id: str
    image: Image.Image | None
    image_note: str
    ground_truth: str
    modality: str
    slots: list[ReviewSlot]
    category_labels: dict[str, str] = field(default_factory=dict)
    style: HighlightStyle = field(default_factory=HighlightStyle)


def _load_upload(path: str | Path, config: LoaderConfig
                 ) -> tuple[Image.Image, Image.Image, dict[str, str], str]:
    """(model image, display image, metadata, format) through `medcap.data` (DICOM included)."""
    try:
        loaded = load_image(Path(path), name=Path(path).name, config=config)
    except ImageLoadError as exc:
        raise UploadError(str(exc)) from exc
    return loaded.image, loaded.display, dict(loaded.metadata), loaded.source_format


def _dataset_label(settings: Any, options: AppOptions) -> str:
    if options.dataset_label:
        return options.dataset_label
    source = getattr(settings, "data_source", None)
    if source:
        name = Path(str(source)).name if os.path.exists(str(source)) else str(source)
        return f"{name}:{getattr(settings, 'data_split', '') or 'all'}"
    if options.results_csv:
        return Path(options.results_csv).stem
    return "uploads"


class Studio:
    """The review studio's state and actions."""

    def __init__(self, settings: Any, options: AppOptions | None = None,
                 pool: ModelPool | None = None, store: ReviewStore | None = None):
        self.settings = settings
        self.options = options or AppOptions.from_env()
        if pool is None:
            specs, problems = settings.model_specs()
            pool = ModelPool(specs, problems)
        self.pool = pool
        self.store = store or ReviewStore(settings.reviews_db, categories=load_categories(settings))
        self.dataset = _dataset_label(settings, self.options)
        self.data_problem = ""
        self.results = self._read_csv("results", read_results_csv, self.options.results_csv)
        self._comparison: ComparisonSet | None = None
        self._scores: ScoreBook | None = None
        self._table: EvaluationTable | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_environment(cls) -> "Studio":
        from medcap.config import load_settings

        return cls(load_settings(), AppOptions.from_env())

    def warm_up(self) -> None:
        """Read the dataset sample and score the captions now, so the first Compare / Evaluation
        click does not wait for them (the metrics' first run loads WordNet, seconds)."""
        try:
            _ = self.evaluation
        except Exception as exc:  # noqa: BLE001 - the same error resurfaces on first use
            self.data_problem = self.data_problem or f"Preparing the comparison failed: {exc}"

    def warm_up_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.warm_up, name="medcap-warm-up", daemon=True)
        thread.start()
        return thread

    # -- models --------------------------------------------------------------------------------

    @property
    def slot_models(self) -> list[str]:
        """Models that get a card in Compare: configured ones, then any others in the results."""
        models = list(self.pool.labels)
        if self.results is not None:
            models += [m for m in dict.fromkeys(self.results["model"]) if m not in models]
        return models

    def caption_upload(self, path: str | Path | None, labels: Sequence[str], prompt: str = "",
                       progress: Progress | None = None) -> UploadResult:
        if not path:
            raise UploadError("Upload a PNG, JPEG or DICOM file first.")
        if not labels:
            raise UploadError("Choose at least one model.")
        if was_discarded(path):
            raise UploadError("That upload was deleted from the server once it had been read, so "
                              "no patient data stays behind: upload the file again.")
        try:
            image, display, metadata, source_format = _load_upload(path, self.upload_config)
        finally:  # the upload (a DICOM's name and tags) must not outlive its decoding
            discard_upload(path, keep=self.options.examples)
        cards = self.pool.caption_cards(list(labels), image, prompt, progress)
        return UploadResult(display, metadata, cards, source_format,
                            style=self.options.highlight_style)

    @property
    def upload_config(self) -> LoaderConfig:
        """Uploads: refused above the app's size limits, decoded reduced (see AppOptions)."""
        options = self.options
        return LoaderConfig(max_pixels=options.max_upload_megapixels * 1_000_000,
                            max_file_bytes=options.max_upload_mb * 1024 * 1024,
                            max_decoded_pixels=options.decoded_megapixels * 1_000_000)

    # -- comparison ----------------------------------------------------------------------------

    @property
    def comparison(self) -> ComparisonSet:
        with self._lock:
            if self._comparison is None:
                self._comparison = build_comparison_set(self.dataset, self.results,
                                                        self._dataset_records())
            return self._comparison

    def _read_csv(self, what: str, read: Any, path: Path | None) -> Any:
        """A configured CSV, or None with the reason shown on the page (a mistyped path must
        not stop the app, nor turn every click into a bare 'Error')."""
        if not path:
            return None
        try:
            return read(path)
        except (OSError, ValueError, KeyError) as exc:
            problem = f"Could not read the {what} CSV {path}: {type(exc).__name__}: {exc}"
            self.data_problem = "; ".join(p for p in (self.data_problem, problem) if p)
            return None

    def _dataset_records(self) -> list[Any]:
        source = getattr(self.settings, "data_source", None)
        if not source:
            return []
        try:
            from medcap.data import iter_records

            return list(iter_records(source, split=getattr(self.settings, "data_split", None),
                                     limit=self.options.sample_size))
        except Exception as exc:  # noqa: BLE001 - the app still works from the results CSV
            self.data_problem = f"Could not read the dataset {source}: {exc}"
            return []

    @property
    def scores(self) -> ScoreBook:
        with self._lock:
            if self._scores is None:
                evaluation = self._read_csv("evaluation", read_evaluation_csv,
                                            self.options.evaluation_csv)
                self._scores = ScoreBook(self.comparison, evaluation)
            return self._scores

    def open_item(self, image_id: str | None, reviewer: str = "") -> ItemView:
        comparison = self.comparison
        item = comparison.get(image_id or "") if image_id else None
        if item is None:
            raise UploadError(f"No image with id '{image_id}' in {self.dataset}." if image_id
                              else "No images loaded: configure a dataset or a results CSV.")
        image, note = None, ""
        if item.record is not None:
            try:
                image = item.record.load().display
            except Exception as exc:  # noqa: BLE001 - show why, keep the captions reviewable
                note = f"Image could not be loaded: {exc}"
        else:
            note = "The image is not in the loaded dataset sample; captions only."
        reviews = self.store.reviews_for_item(self.dataset, item.image_id)
        slots = []
        for model in self.slot_models:
            caption = item.captions.get(model, "")
            card = CaptionCard(
                model=model, caption=caption, seconds=item.seconds.get(model),
                error=item.errors.get(model, ""),
                scores=self.scores.scores(item.image_id, model) if caption else {},
                shared_words=frozenset(shared_words(caption, item.ground_truth)) if caption else frozenset(),
                tokens=item.tokens.get(model, ()), reference=item.ground_truth,
            )
            mine = self.store.get(ReviewKey(self.dataset, item.image_id, model, reviewer))
            others = [(r.key.reviewer, r.summary()) for r in reviews
                      if r.key.model == model and (mine is None or r.key != mine.key)]
            history = self.store.history(mine.key) if mine and mine.version > 1 else []
            slots.append(ReviewSlot(model, card, mine, others, history, suggested_categories=(
                self.suggested_categories(caption, item.ground_truth))))
        return ItemView(item.image_id, image, note, item.ground_truth, item.modality, slots,
                        category_labels={c.key: c.label for c in self.store.categories},
                        style=self.options.highlight_style)

    def suggested_categories(self, caption: str, ground_truth: str) -> tuple[str, ...]:
        """The configured error categories the fact check suggests for a caption (to confirm)."""
        if not caption.strip() or not ground_truth.strip():
            return ()
        from medcap.metrics import suggested_categories

        known = {c.key for c in self.store.categories}
        return tuple(k for k in suggested_categories(caption, ground_truth) if k in known)

    def generate_missing(self, image_id: str, progress: Progress | None = None) -> str:
        """Caption the item with every configured model that has no caption for it yet."""
        item = self.comparison.get(image_id)
        if item is None:
            raise UploadError(f"No image with id '{image_id}'.")
        missing = [m for m in self.pool.labels if m not in item.captions]
        if not missing:
            return "Every model already has a caption for this image."
        if item.record is None:
            raise UploadError("This image is not in the loaded dataset sample, so it cannot be captioned.")
        image = item.record.load().image
        cards = self.pool.caption_cards(missing, image, None, progress)
        done, failed = [], []
        for card in cards:
            if card.error:
                failed.append(f"{card.model}: {card.error}")
                continue
            self.comparison.add_caption(item.image_id, card.model, card.caption, card.seconds,
                                        card.tokens)
            self.scores.invalidate(card.model)
            done.append(card.model)
        with self._lock:
            self._table = None  # new captions change the evaluation table
        message = f"Generated: {', '.join(done)}." if done else "Nothing generated."
        return message + (" Failed: " + "; ".join(failed) if failed else "")

    # -- reviews -------------------------------------------------------------------------------

    def save_review(self, image_id: str, model: str, reviewer: str, verdict: str | None,
                    corrected_caption: str, note: str, base_version: int, *,
                    categories: Sequence[str] = (), significant: bool = False) -> SaveOutcome:
        """Validate and store; raises `ReviewValidationError` / `ReviewConflict` for the UI."""
        item = self.comparison.get(image_id)
        caption = item.captions.get(model, "") if item else ""
        context = ReviewContext(
            generated_caption=caption,
            ground_truth=item.ground_truth if item else "",
            modality=item.modality if item else "",
            scores=self.scores.scores(image_id, model) if caption else {},
        )
        outcome = self.store.save(ReviewInput(
            key=ReviewKey(self.dataset, str(image_id), model, reviewer), verdict=verdict or None,
            corrected_caption=corrected_caption or "", note=note or "",
            base_version=int(base_version or 0), context=context,
            categories=tuple(categories or ()), significant=bool(significant)))
        # One indexed lookup for the one row that changed (not every verdict in the store).
        verdicts = self.store.item_verdicts(self.dataset, str(image_id), model)
        with self._lock:
            if self._table is not None:
                self._table.set_verdict(str(image_id), model, verdicts)
        return outcome

    def export_reviews(self) -> Path:
        """All completed reviews (drafts left out) as a spreadsheet-safe CSV file."""
        if not self.store.count():
            raise UploadError("No completed reviews to export yet.")
        folder = Path(self.options.export_dir or gradio_temp_dir() / "medcap-exports")
        prune_exports(folder, keep=self.options.exports_kept - 1,
                      max_age_s=self.options.temp_minutes * 60)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return export_store_csv(self.store, Path(folder) / f"medcap-reviews-{stamp}.csv")

    def review_stats(self) -> dict[str, Any] | None:
        """The `medcap reviews stats` document of this dataset's completed reviews (None when
        there is none), for the Agreement tab. Reads the store only, so it takes no Studio lock:
        a second of figures on a large store must not hold up saves or table pages."""
        return store_stats(self.store, self.dataset)

    # -- evaluation ----------------------------------------------------------------------------

    def _verdicts(self) -> dict[tuple[str, str], str]:
        joined: dict[tuple[str, str], list[str]] = {}
        for review in self.store.iter_reviews(self.dataset):
            joined.setdefault((review.key.image_id, review.key.model), []).append(review.verdict or "")
        return {k: "; ".join(sorted(set(v))) for k, v in joined.items()}

    @property
    def evaluation(self) -> EvaluationTable:
        with self._lock:
            if self._table is None:
                frame = self.scores.table_frame(self.slot_models)
                self._table = EvaluationTable(frame, verdicts=self._verdicts())
            return self._table

    def query_table(self, query: TableQuery) -> TablePage:
        table = self.evaluation
        with self._lock:
            return table.query(query)

    def distribution(self, metric: str, query: TableQuery) -> pd.DataFrame:
        """Histogram (bin, count, model) of one metric over the rows matching the filters."""
        table = self.evaluation
        with self._lock:
            values = table.metric_values(metric, query)
        return histogram(values, metric, self.options.histogram_bins)

    def summary(self) -> pd.DataFrame:
        table = self.evaluation
        models = table.models or self.slot_models
        return self.scores.summary(models, self.store.verdict_counts(self.dataset), VERDICTS)

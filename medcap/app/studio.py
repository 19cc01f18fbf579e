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
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
from PIL import Image

from medcap.app.cards import CaptionCard
from medcap.app.comparison import ComparisonSet, build_comparison_set
from medcap.app.decoded import DecodedUploads
from medcap.app.generation import StopSwitches
from medcap.app.highlight import HighlightStyle
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.scores import ScoreBook, shared_words
from medcap.app.table import (
    Cells,
    EvaluationTable,
    TablePage,
    TableQuery,
    histogram,
    review_cells,
)
from medcap.app.tempfiles import discard_upload, gradio_temp_dir, prune_exports, was_discarded
from medcap.app.upload_set import captions_of, upload_comparison
from medcap.data import ImageLoadError, LoaderConfig, load_image
from medcap.review import (
    UPLOADS_DATASET,
    VERDICTS,
    ErrorCategory,
    Preference,
    QueueProgress,
    QueueSettings,
    Review,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewQueue,
    ReviewRevision,
    ReviewStore,
    ReviewValidationError,
    SaveOutcome,
    UploadItemError,
    UploadStore,
    blind_label,
    blind_order,
    export_store_csv,
    load_categories,
    reviewer_key,
)
from medcap.results import read_evaluation_csv, read_results_csv
from medcap.review.analytics import store_stats
from medcap.review.uploads import is_upload_id

Progress = Callable[[float, str], None]
MAX_PROMPT_CHARS = 2000
"""A Qwen2-VL instruction is a sentence or two; a longer one is refused, not truncated."""


class UploadError(ValueError):
    """An upload that cannot be shown or captioned; the message is for the user."""


@dataclass
class UploadResult:
    preview: Image.Image
    metadata: dict[str, str]
    cards: list[CaptionCard]
    source_format: str
    style: HighlightStyle = field(default_factory=HighlightStyle)
    item_id: str = ""  # the upload's id in the "uploads" collection once it is kept


@dataclass
class ReviewSlot:
    """One model's caption card plus the reviewer's saved review and others' verdicts.
    `label` is what the page calls the caption: the model's name, or "Caption A" while blind."""

    model: str
    card: CaptionCard
    review: Review | None
    others: list[tuple[str, str]] = field(default_factory=list)
    history: list[ReviewRevision] = field(default_factory=list)
    suggested_categories: tuple[str, ...] = ()
    """Error category keys the fact check suggests (contradictions with the ground truth)."""
    label: str = ""


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
    collection: str = ""
    blind: bool = False  # model names are hidden (blind mode, before this reviewer finished)


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
                 pool: ModelPool | None = None, store: ReviewStore | None = None,
                 uploads: UploadStore | None = None, queue_settings: QueueSettings | None = None):
        self.settings = settings
        self.options = options or AppOptions.from_env()
        if pool is None:
            specs, problems = settings.model_specs()
            pool = ModelPool(specs, problems)
        self.pool = pool
        self.store = store or ReviewStore(settings.reviews_db, categories=load_categories(settings))
        self.uploads = uploads or UploadStore.from_env(Path(settings.reviews_db).parent / "uploads")
        self.queue_settings = queue_settings or QueueSettings.from_env()
        self.dataset = _dataset_label(settings, self.options)
        self.data_problem = ""
        self.results = self._read_csv("results", read_results_csv, self.options.results_csv)
        self._comparison: ComparisonSet | None = None
        self._scores: ScoreBook | None = None
        self._table: EvaluationTable | None = None
        self._upload_set: ComparisonSet | None = None
        self._upload_scores: ScoreBook | None = None
        self._cells: tuple[Cells, Cells] | None = None
        self._slot_models: list[str] | None = None
        self._lock = threading.RLock()
        self.notice = ""  # HTML banner above the tabs (the demo workspace says so)
        self.backup = None  # the MEDCAP_REVIEWS_REPO copy of the reviews, when configured
        self.stops = StopSwitches()  # per browser session, for the Caption tab's Stop button
        self.decoded_uploads = DecodedUploads()  # Caption pressed again on the same upload

    @classmethod
    def from_environment(cls) -> "Studio":
        """The configured workspace, or the shipped demo (see `medcap.app.demo`)."""
        from medcap.app.demo import choose_workspace
        from medcap.app.reviews_backup import start_reviews_backup
        from medcap.config import load_settings

        workspace = choose_workspace(load_settings(), AppOptions.from_env(), os.environ)
        studio = cls(workspace.settings, workspace.options)
        studio.notice = workspace.notice
        studio.backup = start_reviews_backup(workspace.settings.reviews_db)  # MEDCAP_REVIEWS_REPO
        return studio

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
        """Models that get a card in Compare: configured ones, then any others in the results,
        then any other model that captioned a kept upload (an earlier run's configuration).
        Fixed at first use: the page has one review column per model."""
        with self._lock:
            if self._slot_models is None:
                models = list(self.pool.labels)
                if self.results is not None:
                    models += [m for m in dict.fromkeys(self.results["model"]) if m not in models]
                uploads = self._upload_collection()[0]
                models += [m for m in uploads.models if m not in models and uploads.pairs(m)]
                self._slot_models = models
            return list(self._slot_models)

    def caption_upload(self, path: str | Path | None, labels: Sequence[str], prompt: str = "",
                       progress: Progress | None = None, session: str = "") -> UploadResult:
        labels, image, display, metadata, source_format = self._checked_upload(path, labels,
                                                                              prompt, session)
        cards = self.pool.caption_cards(labels, image, prompt, progress)
        return UploadResult(display, metadata, cards, source_format,
                            style=self.options.highlight_style)

    def stream_upload(self, path: str | Path | None, labels: Sequence[str], prompt: str = "",
                      stop: threading.Event | None = None, session: str = ""
                      ) -> Iterator[UploadResult]:
        """`caption_upload`, yielded again each time a card gains words; the last result holds
        the whole captions. A bad upload raises `UploadError` before anything is yielded."""
        labels, image, display, metadata, source_format = self._checked_upload(path, labels,
                                                                              prompt, session)
        for cards in self.pool.stream_cards(labels, image, prompt, stop):
            yield UploadResult(display, metadata, cards, source_format,
                               style=self.options.highlight_style)

    def _checked_upload(self, path: str | Path | None, labels: Sequence[str], prompt: str | None,
                        session: str = ""
                        ) -> tuple[list[str], Image.Image, Image.Image, dict[str, str], str]:
        """The request's checks (bounded models and prompt), then the decoded upload: decoded
        now (and the file deleted), or, for the same upload captioned again by its session,
        what was decoded the first time (`medcap.app.decoded`)."""
        if not path:
            raise UploadError("Upload a PNG, JPEG or DICOM file first.")
        chosen = list(dict.fromkeys(str(label) for label in labels or []))
        if not chosen:
            raise UploadError("Choose at least one model.")
        known = max(1, len(set(self.pool.labels) | set(self.pool.problems)))
        if len(chosen) > known:
            raise UploadError(f"Choose at most {known} model{'s' if known > 1 else ''} "
                              f"(got {len(chosen)}).")
        if prompt and len(prompt) > MAX_PROMPT_CHARS:
            raise UploadError(f"The prompt is {len(prompt):,} characters; keep it under "
                              f"{MAX_PROMPT_CHARS:,}.")
        if was_discarded(path):
            kept = self.decoded_uploads.recall(session, path)
            if kept is None:
                raise UploadError("That upload was deleted from the server once it had been "
                                  "read, so no patient data stays behind: upload the file again.")
            return (chosen, *kept)
        try:
            decoded = _load_upload(path, self.upload_config)
        finally:  # the upload (a DICOM's name and tags) must not outlive its decoding
            discard_upload(path, keep=self.options.examples)
        self.decoded_uploads.remember(session, path, decoded)
        return (chosen, *decoded)

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

    # -- collections: the dataset sample / results CSV, and the uploads ---------------------

    @property
    def collections(self) -> list[str]:
        """Names of the reviewable collections (what reviews are filed under), dataset first."""
        return list(dict.fromkeys([self.dataset, UPLOADS_DATASET]))

    @property
    def categories(self) -> tuple[ErrorCategory, ...]:
        return self.store.categories

    def _upload_collection(self) -> tuple[ComparisonSet, ScoreBook]:
        with self._lock:
            if self._upload_set is None or self._upload_scores is None:
                self._upload_set = upload_comparison(self.uploads)
                self._upload_scores = ScoreBook(self._upload_set, require_reference=True)
            return self._upload_set, self._upload_scores

    def comparison_for(self, collection: str) -> ComparisonSet:
        """The items of one collection (`collections`); the dataset's for an unknown name."""
        if collection == UPLOADS_DATASET:
            return self._upload_collection()[0]
        return self.comparison

    def _scores_for(self, collection: str) -> ScoreBook:
        return self._upload_collection()[1] if collection == UPLOADS_DATASET else self.scores

    def collection_of(self, image_id: str, collection: str = "") -> str:
        """The collection an item belongs to: the one named, else an upload id's, else the
        dataset (ids of uploads, "upload-<12 hex>", cannot be mistaken for dataset ids)."""
        if collection:
            if collection not in self.collections:
                raise ReviewValidationError(f"Unknown collection {str(collection)[:40]!r}; "
                                            f"choose one of: {', '.join(self.collections)}.")
            return collection
        if is_upload_id(image_id) and self.comparison.get(image_id) is None:
            return UPLOADS_DATASET
        return self.dataset

    def _changed_uploads(self) -> None:
        """An upload was added, changed or forgotten: rebuild its collection and the table."""
        with self._lock:
            self._upload_set = self._upload_scores = None
            self._table = None

    def keep_upload(self, result: UploadResult, session: str = "") -> str:
        """File a captioned upload in the "uploads" collection (display PNG, non-identifying
        metadata, captions; never the uploaded file) and return its item id."""
        metadata = dict(result.metadata)
        if result.source_format:
            metadata.setdefault("source_format", result.source_format)
        try:
            item_id = self.uploads.add(result.preview, metadata, captions_of(result.cards),
                                       session=session)
        except UploadItemError as exc:
            raise UploadError(str(exc)) from exc
        self._changed_uploads()
        result.item_id = item_id
        return item_id

    def set_reference(self, item_id: str, text: str) -> str:
        """Give an upload a reference caption, so its captions are scored like a dataset item's."""
        try:
            item = self.uploads.set_reference(item_id, text)
        except UploadItemError as exc:
            raise UploadError(str(exc)) from exc
        self._changed_uploads()
        if not item.reference:
            return f"Reference removed from {item.item_id}: its captions are not scored."
        return f"Reference saved for {item.item_id}: its captions are now scored against it."

    def forget_session(self, session: str) -> int:
        """The browser tab closed: drop its decoded upload; with MEDCAP_KEEP_UPLOADS=0, delete
        what it uploaded."""
        self.decoded_uploads.forget(session)
        deleted = self.uploads.forget_session(session)
        if deleted:
            self._changed_uploads()
        return deleted

    def _item(self, image_id: str | None, collection: str) -> Any:
        item = self.comparison_for(collection).get(image_id or "") if image_id else None
        if item is None:
            where = "the uploads" if collection == UPLOADS_DATASET else self.dataset
            raise UploadError(f"No image with id {str(image_id)[:80]!r} in {where}." if image_id
                              else "No images loaded: configure a dataset or a results CSV, "
                                   "or caption an upload.")
        return item

    def _slot_order(self, item: Any, collection: str, reviewer: str, blind: bool) -> list[str]:
        """Models in card order: as configured, or (blind) captioned ones first in a stable
        per-reviewer shuffle, so "Caption A" and "B" are the two captions a pairwise vote compares."""
        models = self.slot_models
        if not blind:
            return models
        captioned = [m for m in models if item.captions.get(m)]
        rest = [m for m in models if m not in captioned]
        return (blind_order(collection, item.image_id, reviewer, captioned)
                + blind_order(collection, item.image_id, reviewer, rest))

    def is_finished(self, collection: str, image_id: str, reviewer: str) -> bool:
        """Has the reviewer judged every caption of this item (or voted on a pair)? Then blind
        mode shows the model names."""
        item = self.comparison_for(collection).get(image_id)
        if item is None or not reviewer.strip():
            return False
        who = reviewer_key(reviewer)
        done = {r.key.model for r in self.store.final_reviews_for_item(collection, image_id)
                if reviewer_key(r.key.reviewer) == who}
        captioned = {m for m in self.slot_models if item.captions.get(m)}
        if captioned and captioned <= done:
            return True
        return any(p.image_id == image_id and reviewer_key(p.reviewer) == who
                   for p in self.store.preferences(collection))

    def open_item(self, image_id: str | None, reviewer: str = "", collection: str = "",
                  blind: bool = False) -> ItemView:
        """One item with every model's card and `reviewer`'s own reviews; with `blind`, cards
        are shuffled per reviewer and named "Caption A", ... until the reviewer has finished."""
        try:
            collection = self.collection_of(image_id or "", collection)
        except ReviewValidationError as exc:
            raise UploadError(str(exc)) from exc
        item = self._item(image_id, collection)
        image, note = None, ""
        if item.record is not None:
            try:
                image = item.record.load().display
            except Exception as exc:  # noqa: BLE001 - show why, keep the captions reviewable
                note = f"Image could not be loaded: {exc}"
        else:
            note = "The image is not in the loaded dataset sample; captions only."
        hidden = blind and not self.is_finished(collection, item.image_id, reviewer)
        reviews = self.store.reviews_for_item(collection, item.image_id)
        scores = self._scores_for(collection)
        slots = []
        for index, model in enumerate(self._slot_order(item, collection, reviewer, blind)):
            caption = item.captions.get(model, "")
            label = blind_label(index) if hidden else model
            card = CaptionCard(
                model=label, caption=caption, seconds=item.seconds.get(model),
                error=item.errors.get(model, ""),
                scores=scores.scores(item.image_id, model) if caption else {},
                shared_words=frozenset(shared_words(caption, item.ground_truth)) if caption else frozenset(),
                tokens=item.tokens.get(model, ()), reference=item.ground_truth,
            )
            mine = self.store.get(ReviewKey(collection, item.image_id, model, reviewer))
            others = [(r.key.reviewer, r.summary()) for r in reviews
                      if r.key.model == model and (mine is None or r.key != mine.key)]
            history = self.store.history(mine.key) if mine and mine.version > 1 else []
            slots.append(ReviewSlot(model, card, mine, others, history, suggested_categories=(
                self.suggested_categories(caption, item.ground_truth)), label=label))
        return ItemView(item.image_id, image, note, item.ground_truth, item.modality, slots,
                        category_labels={c.key: c.label for c in self.store.categories},
                        style=self.options.highlight_style, collection=collection,
                        blind=hidden)

    def suggested_categories(self, caption: str, ground_truth: str) -> tuple[str, ...]:
        """The configured error categories the fact check suggests for a caption (to confirm)."""
        if not caption.strip() or not ground_truth.strip():
            return ()
        from medcap.metrics import suggested_categories

        known = {c.key for c in self.store.categories}
        return tuple(k for k in suggested_categories(caption, ground_truth) if k in known)

    def generate_missing(self, image_id: str, progress: Progress | None = None,
                         collection: str = "") -> str:
        """Caption the item with every configured model that has no caption for it yet."""
        collection = self.collection_of(image_id, collection)
        item = self.comparison_for(collection).get(image_id)
        if item is None:
            raise UploadError(f"No image with id {str(image_id)[:80]!r}.")
        missing = [m for m in self.pool.labels if m not in item.captions]
        if not missing:
            return "Every model already has a caption for this image."
        if item.record is None:
            raise UploadError("This image is not in the loaded dataset sample, so it cannot be captioned.")
        image = item.record.load().image
        cards = self.pool.caption_cards(missing, image, None, progress)
        done = [card for card in cards if not card.error]
        failed = [f"{card.model}: {card.error}" for card in cards if card.error]
        if collection == UPLOADS_DATASET:
            stored = self.uploads.get(item.image_id)
            self.uploads.add(item.record.load().display, stored.metadata if stored else {},
                             captions_of(done))
            self._changed_uploads()
        else:
            for card in done:
                self.comparison.add_caption(item.image_id, card.model, card.caption, card.seconds,
                                            card.tokens)
                self.scores.invalidate(card.model)
            with self._lock:
                self._table = None  # new captions change the evaluation table
        names = [card.model for card in done]
        message = f"Generated: {', '.join(names)}." if names else "Nothing generated."
        return message + (" Failed: " + "; ".join(failed) if failed else "")

    # -- reviews -------------------------------------------------------------------------------

    def _reviewable(self, image_id: str, model: str, collection: str) -> tuple[str, Any]:
        """(collection, item) of a caption that exists; anything else is refused with a
        message that says which part is unknown (ids and models are never invented)."""
        collection = self.collection_of(str(image_id or ""), collection)
        where = "the uploads" if collection == UPLOADS_DATASET else self.dataset
        item = self.comparison_for(collection).get(str(image_id or "")) if image_id else None
        if item is None:
            raise ReviewValidationError(
                f"Not saved: there is no image with id {str(image_id)[:80]!r} in {where}.")
        if model not in self.slot_models and model not in item.captions:
            raise ReviewValidationError(
                f"Not saved: unknown model {str(model)[:80]!r}; models: "
                f"{', '.join(self.slot_models)}.")
        if not item.captions.get(model):
            raise ReviewValidationError(
                f"Not saved: {str(model)[:80]} has no caption for {item.image_id} yet.")
        return collection, item

    def save_review(self, image_id: str, model: str, reviewer: str, verdict: str | None,
                    corrected_caption: str, note: str, base_version: int, *,
                    categories: Sequence[str] = (), significant: bool = False,
                    collection: str = "") -> SaveOutcome:
        """Validate and store; raises `ReviewValidationError` / `ReviewConflict` for the UI."""
        collection, item = self._reviewable(image_id, model, collection)
        caption = item.captions[model]
        context = ReviewContext(
            generated_caption=caption, ground_truth=item.ground_truth, modality=item.modality,
            scores=self._scores_for(collection).scores(item.image_id, model),
        )
        outcome = self.store.save(ReviewInput(
            key=ReviewKey(collection, item.image_id, model, reviewer), verdict=verdict or None,
            corrected_caption=corrected_caption or "", note=note or "",
            base_version=int(base_version or 0), context=context,
            categories=tuple(categories or ()), significant=bool(significant)))
        # One indexed lookup for the one image that changed (not every review in the store).
        verdicts, errors = review_cells(self.store.final_reviews_for_item(collection,
                                                                           item.image_id))
        key = (item.image_id, model)
        with self._lock:
            if self._cells is not None:
                self._cells[0][key] = verdicts.get(key, "")
                self._cells[1][key] = errors.get(key, "")
            if self._table is not None:
                self._table.set_verdict(item.image_id, model, verdicts.get(key, ""),
                                        errors.get(key, ""))
        return outcome

    def save_preference(self, image_id: str, model_a: str, model_b: str, reviewer: str,
                        choice: str, collection: str = "") -> Preference:
        """A pairwise judgement of two captions of one item (both must exist)."""
        collection, _ = self._reviewable(image_id, model_a, collection)
        self._reviewable(image_id, model_b, collection)
        return self.store.save_preference(collection, str(image_id), model_a, model_b,
                                          reviewer, choice)

    def queue(self, collection: str = "") -> ReviewQueue:
        """The review queue over one collection's captioned items (an image without a caption
        has nothing to review); settings from `QueueSettings.from_env`."""
        collection = collection if collection in self.collections else self.dataset
        comparison = self.comparison_for(collection)
        captioned = [i for i in comparison.ids() if comparison.get(i).captions]
        return ReviewQueue(self.store, collection, captioned, self.queue_settings)

    def next_for(self, reviewer: str, collection: str = "") -> tuple[str | None, QueueProgress]:
        """(the reviewer's next item or None when nothing is left for them, their progress)."""
        queue = self.queue(collection)
        image_id = queue.next_for(reviewer)
        return image_id, queue.progress(reviewer)

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

    def _table_frame(self) -> pd.DataFrame:
        """Dataset rows, then upload rows (with a `collection` column saying which)."""
        parts = []
        for collection in self.collections:
            frame = self._scores_for(collection).table_frame(self.slot_models)
            if len(frame):
                parts.append(frame.assign(collection=collection))
        return pd.concat(parts, ignore_index=True) if parts else \
            self.scores.table_frame(self.slot_models)

    @property
    def evaluation(self) -> EvaluationTable:
        with self._lock:
            if self._table is None:
                verdicts, errors = self._all_cells()
                self._table = EvaluationTable(self._table_frame())
                self._table.set_verdicts(verdicts, errors)
            return self._table

    def _all_cells(self) -> tuple[Cells, Cells]:
        """Every caption's verdict and category cells, read from the store once and then kept
        up to date by `save_review`, so a new upload (which rebuilds the table) does not reread
        every review."""
        with self._lock:
            if self._cells is None:
                verdicts, errors = {}, {}
                for collection in self.collections:
                    cells = review_cells(self.store.iter_reviews(collection))
                    verdicts.update(cells[0])
                    errors.update(cells[1])
                self._cells = (verdicts, errors)
            return self._cells

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
        counts: dict[str, dict[str, int]] = {}
        for collection in self.collections:
            for model, by_verdict in self.store.verdict_counts(collection).items():
                for verdict, number in by_verdict.items():
                    counts.setdefault(model, {})[verdict] = counts.get(model, {}).get(verdict, 0) + number
        return self.scores.summary(models, counts, VERDICTS)


"""Review storage (SQLite, edit history, optimistic concurrency) and spreadsheet-safe CSV export.

One review per ``(dataset, image_id, model, reviewer)``: each clinician keeps their own verdict on
each caption; a stale save from the same reviewer (two tabs) is refused with `ReviewConflict`.
Error categories (`categories`), pairwise preferences, the review queue (`queue`) and uploaded
images as a reviewable collection (`uploads`) build on the same store.
"""

from medcap.review.categories import (
    DEFAULT_CATEGORIES,
    SIGNIFICANT_COLUMN,
    CategoryConfigError,
    ErrorCategory,
    category_column,
    load_categories,
)
from medcap.review.export import (
    CSV_SAFETY,
    CsvSafety,
    export_columns,
    export_reviews_csv,
    export_store_csv,
    neutralize_cell,
    review_export_rows,
    safe_csv_text,
    write_safe_csv,
)
from medcap.review.queue import (
    QueueProgress,
    QueueSettings,
    ReviewQueue,
    blind_label,
    blind_order,
)
from medcap.review.records import (
    PREFERENCE_CHOICES,
    VERDICTS,
    Preference,
    Review,
    ReviewConflict,
    ReviewContext,
    ReviewError,
    ReviewInput,
    ReviewKey,
    ReviewLimits,
    ReviewRevision,
    ReviewValidationError,
    SaveOutcome,
)
from medcap.review.store import ReviewStore, StoreOptions, normalize_reviewer, reviewer_key
from medcap.review.uploads import UPLOADS_DATASET, UploadItem, UploadItemError, UploadStore

__all__ = [
    "CSV_SAFETY", "CategoryConfigError", "CsvSafety", "DEFAULT_CATEGORIES", "ErrorCategory",
    "PREFERENCE_CHOICES", "Preference", "QueueProgress", "QueueSettings", "Review",
    "ReviewConflict", "ReviewContext", "ReviewError", "ReviewInput", "ReviewKey", "ReviewLimits",
    "ReviewQueue", "ReviewRevision", "ReviewStore", "ReviewValidationError", "SIGNIFICANT_COLUMN",
    "SaveOutcome", "StoreOptions", "UPLOADS_DATASET", "UploadItem", "UploadItemError",
    "UploadStore", "VERDICTS", "blind_label", "blind_order", "category_column", "export_columns",
    "export_reviews_csv", "export_store_csv", "load_categories", "neutralize_cell",
    "normalize_reviewer", "review_export_rows", "reviewer_key", "safe_csv_text", "write_safe_csv",
]

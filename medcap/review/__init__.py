"""Review storage (SQLite, edit history, optimistic concurrency) and spreadsheet-safe CSV export.

One review per ``(dataset, image_id, model, reviewer)``: each clinician keeps their own verdict on
each caption; a stale save from the same reviewer (two tabs) is refused with `ReviewConflict`.
"""

from medcap.review.export import (
    CSV_SAFETY,
    CsvSafety,
    export_reviews_csv,
    neutralize_cell,
    review_export_rows,
    safe_csv_text,
    write_safe_csv,
)
from medcap.review.records import (
    VERDICTS,
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
from medcap.review.store import ReviewStore, StoreOptions, normalize_reviewer

__all__ = [
    "CSV_SAFETY", "CsvSafety", "Review", "ReviewConflict", "ReviewContext", "ReviewError", "ReviewInput", "ReviewKey", "ReviewLimits", "ReviewRevision", "ReviewStore",
    "ReviewValidationError", "SaveOutcome", "StoreOptions", "VERDICTS",
    "export_reviews_csv", "neutralize_cell", "normalize_reviewer", "review_export_rows",
    "safe_csv_text", "write_safe_csv",
]

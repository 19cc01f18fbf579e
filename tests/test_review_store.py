"""Review storage: keys, drafts, history, conflicts between concurrent saves, persistence."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from medcap.review import (
    VERDICTS,
    ReviewConflict,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewLimits,
    ReviewStore,
    ReviewValidationError,
)


def key(reviewer: str = "Dr Ada", model: str = "blip", image_id: str = "ROCO_001") -> ReviewKey:
    return ReviewKey(dataset="roco-test", image_id=image_id, model=model, reviewer=reviewer)


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(tmp_path / "reviews.sqlite")


def test_saved_review_reappears_with_context(store: ReviewStore) -> None:
    context = ReviewContext(generated_caption="chest x-ray", ground_truth="PA chest radiograph",
                            modality="X-ray", scores={"bleu4": 0.25, "bertscore": float("nan")})
    outcome = store.save(ReviewInput(key=key(), verdict="minor error",
                                     corrected_caption="PA chest radiograph", note=" ok ",
                                     context=context))
    assert outcome.review.version == 1
    assert outcome.message.startswith("Saved: minor error (version 1")
    again = ReviewStore(store.path).get(key())
    assert again is not None
    assert (again.verdict, again.corrected_caption, again.note) == (
        "minor error", "PA chest radiograph", "ok")
    assert again.context.ground_truth == "PA chest radiograph"
    assert again.context.scores == {"bleu4": 0.25}, "an unavailable (NaN) score is not stored"
    assert not again.is_draft


def test_reviewer_name_is_normalised_for_lookup(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key("Dr  Ada "), verdict="correct"))
    found = store.get(key("dr ada"))
    assert found is not None and found.key.reviewer == "Dr Ada"
    assert store.get(key("")) is None


def test_each_reviewer_keeps_their_own_review(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key("Dr Ada"), verdict="correct"))
    store.save(ReviewInput(key=key("Dr Bo"), verdict="unusable", note="wrong organ"))
    reviews = store.reviews_for_item("roco-test", "ROCO_001")
    assert {(r.key.reviewer, r.verdict) for r in reviews} == {("Dr Ada", "correct"),
                                                              ("Dr Bo", "unusable")}
    assert store.verdict_counts() == {"blip": {"correct": 1, "unusable": 1}}


def test_history_keeps_every_version(store: ReviewStore) -> None:
    first = store.save(ReviewInput(key=key(), verdict="major error", note="mentions a fracture"))
    second = store.save(ReviewInput(key=key(), verdict="minor error", note="fracture is real",
                                    base_version=first.review.version))
    third = store.save(ReviewInput(key=key(), verdict="correct", base_version=2))
    assert (second.review.version, third.review.version) == (2, 3)
    history = store.history(key())
    assert [(h.version, h.verdict, h.note) for h in history] == [
        (1, "major error", "mentions a fracture"),
        (2, "minor error", "fracture is real"),
        (3, "correct", ""),
    ]


def test_unchanged_save_adds_no_version(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="correct"))
    outcome = store.save(ReviewInput(key=key(), verdict="correct", base_version=1))
    assert outcome.message == "No changes to save."
    assert len(store.history(key())) == 1


def test_stale_save_is_refused_and_shows_the_other_text(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="correct"))
    # Tab A and tab B both opened version 1; A saves first.
    store.save(ReviewInput(key=key(), verdict="major error", corrected_caption="CT of the head",
                           base_version=1))
    with pytest.raises(ReviewConflict) as caught:
        store.save(ReviewInput(key=key(), verdict="unusable", base_version=1))
    message = str(caught.value)
    assert "Not saved" in message and "version 2" in message
    assert 'corrected caption: "CT of the head"' in message
    assert caught.value.current.verdict == "major error"
    assert store.get(key()).verdict == "major error"


def test_creating_a_review_someone_else_just_created_is_a_conflict(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="correct"))
    with pytest.raises(ReviewConflict):
        store.save(ReviewInput(key=key(), verdict="unusable", base_version=0))


def test_two_threads_saving_the_same_version_one_wins_one_is_told(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    ReviewStore(path).save(ReviewInput(key=key(), verdict="correct"))
    barrier = threading.Barrier(8)
    results: list[str] = []
    lock = threading.Lock()

    def save(index: int) -> None:
        store = ReviewStore(path)  # its own connections, like separate server workers
        barrier.wait()
        try:
            store.save(ReviewInput(key=key(), verdict=VERDICTS[index % 4],
                                   note=f"writer {index}", base_version=1))
            outcome = "saved"
        except ReviewConflict:
            outcome = "conflict"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["conflict"] * 7 + ["saved"]
    final = ReviewStore(path).get(key())
    assert final.version == 2
    assert [h.version for h in ReviewStore(path).history(key())] == [1, 2]


def test_two_reviewers_saving_at_once_both_keep_their_review(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def save(reviewer: str, verdict: str) -> None:
        barrier.wait()
        try:
            ReviewStore(path).save(ReviewInput(key=key(reviewer), verdict=verdict))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=("Dr Ada", "correct")),
               threading.Thread(target=save, args=("Dr Bo", "unusable"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {(r.key.reviewer, r.verdict) for r in ReviewStore(path).all_reviews()} == {
        ("Dr Ada", "correct"), ("Dr Bo", "unusable")}


def test_half_written_review_is_kept_as_a_draft(store: ReviewStore) -> None:
    outcome = store.save(ReviewInput(key=key(), corrected_caption="Axial CT of the abdomen"))
    assert outcome.review.is_draft
    assert "draft" in outcome.message and "choose a verdict" in outcome.message
    assert store.get(key()).corrected_caption == "Axial CT of the abdomen"
    assert store.all_reviews() == [], "drafts are not exported"
    assert store.verdict_counts() == {}
    assert len(store.all_reviews(include_drafts=True)) == 1
    completed = store.save(ReviewInput(key=key(), verdict="major error",
                                       corrected_caption="Axial CT of the abdomen", base_version=1))
    assert not completed.review.is_draft
    assert [r.status for r in store.history(key())] == ["draft", "final"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (ReviewInput(key=key(""), verdict="correct"), "Enter your name"),
        (ReviewInput(key=key("   "), verdict="correct"), "Enter your name"),
        (ReviewInput(key=key(), verdict="fine"), "Unknown verdict 'fine'"),
        (ReviewInput(key=key()), "Nothing to save"),
        (ReviewInput(key=key(), verdict="", corrected_caption="  ", note="\n"), "Nothing to save"),
        (ReviewInput(key=key(model=""), verdict="correct"), "no model is selected"),
        (ReviewInput(key=key(), verdict="correct", note="x" * 4001), "Note is too long"),
        (ReviewInput(key=key("x" * 81), verdict="correct"), "Reviewer name is too long"),
        (ReviewInput(key=key(), verdict="correct", base_version=3), "no longer exists"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(
    store: ReviewStore, request_: ReviewInput, expected: str
) -> None:
    with pytest.raises(ReviewValidationError, match=expected):
        store.save(request_)
    assert store.all_reviews(include_drafts=True) == []


def test_limits_are_configurable(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "r.sqlite", limits=ReviewLimits(max_caption_chars=5))
    with pytest.raises(ReviewValidationError, match="at most 5"):
        store.save(ReviewInput(key=key(), verdict="correct", corrected_caption="too long"))


def test_non_ascii_text_round_trips(store: ReviewStore) -> None:
    note = "Zweifelhafte Läsion; 肺结节; α-Fetoprotein ≥ 10 µg"
    store.save(ReviewInput(key=key("Dr Müller-Łukasz"), verdict="minor error", note=note))
    assert store.get(key("dr müller-łukasz")).note == note


def test_failed_transaction_leaves_no_partial_rows(store: ReviewStore, monkeypatch) -> None:
    """A crash between the review write and its history row must roll both back."""
    original_connect = store._connect

    class FailingHistory:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO review_history"):
                raise sqlite3.OperationalError("disk I/O error")
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    monkeypatch.setattr(store, "_connect", lambda: FailingHistory(original_connect()))
    with pytest.raises(sqlite3.OperationalError):
        store.save(ReviewInput(key=key(), verdict="correct"))
    monkeypatch.undo()
    assert store.all_reviews(include_drafts=True) == []


def test_verdict_counts_per_dataset(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(model="blip"), verdict="correct"))
    store.save(ReviewInput(key=key(model="qwen2-vl"), verdict="unusable"))
    other = ReviewKey(dataset="other", image_id="1", model="blip", reviewer="Dr Ada")
    store.save(ReviewInput(key=other, verdict="unusable"))
    assert store.verdict_counts("roco-test") == {"blip": {"correct": 1},
                                                 "qwen2-vl": {"unusable": 1}}
    assert store.verdict_counts()["blip"] == {"correct": 1, "unusable": 1}


# -- v2: categories, final versions, bounded keys, one-row verdicts, preferences, queue ----------

def test_categories_and_significance_are_stored_in_config_order_with_history(
        store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="major error",
                           categories=("missed_finding", "wrong_laterality", "missed_finding"),
                           significant=True))
    review = store.get(key())
    assert review.categories == ("wrong_laterality", "missed_finding")
    assert review.significant is True
    assert "errors: wrong_laterality, missed_finding" in review.summary()
    store.save(ReviewInput(key=key(), verdict="major error", categories=("wrong_laterality",),
                           base_version=1))
    assert [(h.categories, h.significant) for h in store.history(key())] == [
        (("wrong_laterality", "missed_finding"), True), (("wrong_laterality",), False)]


def test_changing_only_categories_is_a_new_version(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="minor error"))
    outcome = store.save(ReviewInput(key=key(), verdict="minor error", significant=True,
                                     base_version=1))
    assert outcome.review.version == 2 and outcome.review.significant


def test_a_single_category_string_is_one_key(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="minor error", categories="missed_finding"))
    assert store.get(key()).categories == ("missed_finding",)


def test_unknown_category_is_refused(store: ReviewStore) -> None:
    with pytest.raises(ReviewValidationError, match="Unknown error category 'typo'"):
        store.save(ReviewInput(key=key(), verdict="correct", categories=("typo",)))
    assert store.all_reviews(include_drafts=True) == []


def test_store_allows_the_configured_categories_only(tmp_path: Path) -> None:
    from medcap.review import ErrorCategory

    custom = ReviewStore(tmp_path / "r.sqlite",
                         categories=(ErrorCategory("wrong_view", "Wrong view", "v"),))
    custom.save(ReviewInput(key=key(), verdict="minor error", categories=("wrong_view",)))
    with pytest.raises(ReviewValidationError, match="choose from: wrong_view"):
        custom.save(ReviewInput(key=key("Dr Bo"), verdict="minor error",
                                categories=("wrong_laterality",)))


def test_draft_over_a_completed_review_keeps_it_in_export_and_counts(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key(), verdict="major error", note="left, not right",
                           categories=("wrong_laterality",)))
    draft = store.save(ReviewInput(key=key(), note="second thoughts", base_version=1))
    assert draft.review.is_draft and "version 1 stays in exports" in draft.message
    assert store.get(key()).note == "second thoughts", "the reviewer reopens their draft"
    [exported] = store.all_reviews()
    assert (exported.verdict, exported.note, exported.version, exported.status) == (
        "major error", "left, not right", 1, "final")
    assert exported.categories == ("wrong_laterality",)
    assert store.verdict_counts() == {"blip": {"major error": 1}}
    assert store.item_verdicts("roco-test", "ROCO_001", "blip") == "major error"
    store.save(ReviewInput(key=key(), verdict="minor error", note="second thoughts",
                           base_version=2))
    assert [r.verdict for r in store.all_reviews()] == ["minor error"]
    assert [r.version for r in store.all_reviews()] == [3]


def test_item_verdicts_joins_one_captions_final_verdicts(store: ReviewStore) -> None:
    store.save(ReviewInput(key=key("Dr Ada"), verdict="correct"))
    store.save(ReviewInput(key=key("Dr Bo"), verdict="unusable"))
    store.save(ReviewInput(key=key("Dr Cy"), verdict="correct"))
    store.save(ReviewInput(key=key("Dr Di"), note="draft only"))
    store.save(ReviewInput(key=key("Dr Ada", model="qwen2-vl"), verdict="minor error"))
    assert store.item_verdicts("roco-test", "ROCO_001", "blip") == "correct; unusable"
    assert store.item_verdicts("roco-test", "ROCO_001", "other") == ""


def test_item_verdicts_uses_an_index_not_a_table_scan(store: ReviewStore) -> None:
    import sqlite3 as sql

    with sql.connect(store.path) as conn:
        plan = " ".join(row[-1] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT DISTINCT final_verdict FROM reviews WHERE dataset=? AND"
            " image_id=? AND model=? AND final_version IS NOT NULL", ("d", "i", "m")))
    conn.close()
    assert "USING INDEX" in plan and "SCAN reviews" not in plan


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("image_id", "x" * 201, "image id is too long"),
        ("image_id", "../../etc/passwd\0", "control character"),
        ("image_id", "ROCO\n001", "line break"),
        ("model", "blip\r", "line break"),
        ("model", "m" * 201, "model is too long"),
        ("dataset", "roco\u2028", "line break"),
        ("dataset", "d" * 201, "dataset is too long"),
        ("reviewer", "Dr\0Ada", "reviewer name contains a control"),
        ("reviewer", "Dr Ada\nDr Bo", "reviewer name contains a control"),
    ],
)
def test_keys_are_bounded_and_printable(store: ReviewStore, field: str, value: str,
                                        expected: str) -> None:
    parts = {"dataset": "roco-test", "image_id": "ROCO_001", "model": "blip", "reviewer": "Dr Ada"}
    parts[field] = value
    with pytest.raises(ReviewValidationError, match=expected):
        store.save(ReviewInput(key=ReviewKey(**parts), verdict="correct"))
    assert store.all_reviews(include_drafts=True) == []


def test_a_ten_megabyte_id_is_refused_before_it_reaches_the_file(store: ReviewStore) -> None:
    size = store.path.stat().st_size
    with pytest.raises(ReviewValidationError, match="at most 200"):
        store.save(ReviewInput(key=key(image_id="x" * 10_000_000), verdict="correct"))
    assert store.path.stat().st_size == size


def test_nul_in_free_text_is_refused(store: ReviewStore) -> None:
    with pytest.raises(ReviewValidationError, match="NUL"):
        store.save(ReviewInput(key=key(), verdict="correct", note="a\0b"))


def test_iter_reviews_streams_in_stable_order(store: ReviewStore) -> None:
    for image_id in ("ROCO_3", "ROCO_1", "ROCO_2"):
        store.save(ReviewInput(key=key(image_id=image_id), verdict="correct"))
    stream = store.iter_reviews("roco-test")
    assert next(stream).key.image_id == "ROCO_1"
    assert [r.key.image_id for r in stream] == ["ROCO_2", "ROCO_3"]
    assert store.count() == 3 and store.count("elsewhere") == 0


def test_preferences_are_stored_per_pair_and_reviewer(store: ReviewStore) -> None:
    first = store.save_preference("roco-test", "ROCO_001", "qwen2-vl", "blip", "Dr Ada", "A better")
    assert (first.model_a, first.model_b, first.choice) == ("blip", "qwen2-vl", "B better"), \
        "the pair is kept in name order with the choice flipped to match"
    store.save_preference("roco-test", "ROCO_001", "blip", "qwen2-vl", "dr ada", "tie")
    store.save_preference("roco-test", "ROCO_001", "blip", "qwen2-vl", "Dr Bo", "both wrong")
    store.save_preference("other", "1", "blip", "qwen2-vl", "Dr Bo", "A better")
    assert [(p.reviewer, p.choice) for p in store.preferences("roco-test")] == [
        ("dr ada", "tie"), ("Dr Bo", "both wrong")]
    assert len(store.preferences()) == 3


@pytest.mark.parametrize(
    ("models", "choice", "expected"),
    [(("blip", "blip"), "tie", "two different models"),
     (("blip", "qwen2-vl"), "A much better", "Unknown preference"),
     (("blip", "q\n"), "tie", "line break")],
)
def test_bad_preferences_are_refused(store: ReviewStore, models, choice, expected) -> None:
    with pytest.raises(ReviewValidationError, match=expected):
        store.save_preference("roco-test", "ROCO_001", *models, "Dr Ada", choice)
    assert store.preferences() == []


def test_assignments_are_idempotent_and_capped(store: ReviewStore) -> None:
    assert store.assign("roco-test", "ROCO_001", "Dr Ada", limit=2)
    assert store.assign("roco-test", "ROCO_001", "dr ada", limit=2), "already held"
    assert store.assign("roco-test", "ROCO_001", "Dr Bo", limit=2)
    assert not store.assign("roco-test", "ROCO_001", "Dr Cy", limit=2)
    store.assign("roco-test", "ROCO_002", "Dr Cy")
    assert store.assignments("roco-test") == {"ROCO_001": {"dr ada", "dr bo"},
                                              "ROCO_002": {"dr cy"}}


@pytest.mark.parametrize("request_, expected", [
    (ReviewInput(key=key(), verdict="maybe"), "Unknown verdict"),
    (ReviewInput(key=key(), verdict="correct", categories=("wrong_colour",)), "Unknown error category"),
    (ReviewInput(key=key(image_id="a\nb"), verdict="correct"), "control character"),
    (ReviewInput(key=key(), verdict="correct", note="x" * 4001), "Note is too long"),
])
def test_check_refuses_what_save_refuses_and_writes_nothing(
        store: ReviewStore, request_: ReviewInput, expected: str) -> None:
    with pytest.raises(ReviewValidationError, match=expected):
        store.check(request_)
    with pytest.raises(ReviewValidationError, match=expected):
        store.save(request_)
    assert store.all_reviews(include_drafts=True) == []


def test_check_accepts_a_savable_review_without_saving_it(store: ReviewStore) -> None:
    request_ = ReviewInput(key=key(), verdict="minor error", categories=("wrong_laterality",))
    store.check(request_)
    assert store.all_reviews(include_drafts=True) == []
    assert store.save(request_).review.version == 1

"""Review analytics: every agreement figure against its reference package, on reviews saved
through the real store and flattened by the real exporter (`reviews_frame`)."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import cohen_kappa_score

from medcap.review import VERDICTS
from medcap.review.analytics import (
    StatsSettings, bradley_terry, bradley_terry_strengths, plot_frames, review_stats, reviews_frame,
    stats_tables, store_stats,
)
from tests.support.reviews import filled_store, review

CODE = {v: i for i, v in enumerate(VERDICTS)}
C, MI, MA, U = VERDICTS
REVIEWERS = ("Ann", "Bob", "Cy")
# caption (model, image) -> verdict per reviewer (None: not reviewed): missing ratings, a caption
# with one rating only (not pairable), unanimous and split captions, three reviewers.
TABLE = {
    ("blip", "i1"): (C, C, MI),
    ("blip", "i2"): (MA, U, None),
    ("blip", "i3"): (MI, None, MI),
    ("blip", "i4"): (None, C, MA),
    ("blip", "i5"): (C, None, None),
    ("blip", "i6"): (U, U, U),
    ("qwen", "i1"): (MI, C, None),
    ("qwen", "i2"): (C, C, C),
    ("qwen", "i3"): (None, MA, U),
    ("qwen", "i4"): (C, None, MI),
}
BLEU = {("blip", f"i{k}"): 0.1 * k for k in range(1, 7)} | {("qwen", f"i{k}"): 0.9 - 0.1 * k for k in range(1, 5)}
LATERALITY = {("blip", "i1", "Cy"), ("blip", "i2", "Ann"), ("blip", "i2", "Bob"), ("qwen", "i3", "Bob")}
FAST = StatsSettings(bootstrap=200, seed=3)


def table_reviews(table=TABLE):
    for (model, image), verdicts in table.items():
        for reviewer, verdict in zip(REVIEWERS, verdicts):
            if verdict is not None:
                flagged = (model, image, reviewer) in LATERALITY
                yield review("roco:test", image, model, reviewer, verdict,
                             categories=("wrong_laterality",) if flagged else (),
                             significant=verdict == U, scores={"bleu4": BLEU[(model, image)]})


@pytest.fixture
def stats(tmp_path: Path) -> dict:
    store = filled_store(tmp_path / "reviews.sqlite", table_reviews())
    return review_stats(reviews_frame(store.iter_reviews(), store.categories), (), FAST)


def reference_alpha(table) -> float:
    matrix = np.array([[np.nan if v is None else CODE[v] for v in verdicts] for verdicts in table.values()]).T
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal",
                              value_domain=list(range(4)))


def test_alpha_overall_and_per_model_match_krippendorff(stats: dict) -> None:
    assert stats["overall"]["krippendorff_alpha_ordinal"] == pytest.approx(reference_alpha(TABLE), abs=1e-12)
    for model in ("blip", "qwen"):
        subset = {k: v for k, v in TABLE.items() if k[0] == model}
        assert stats["models"][model]["krippendorff_alpha_ordinal"] == pytest.approx(
            reference_alpha(subset), abs=1e-12)
    # units: captions with two or more verdicts (blip i5 has one)
    assert stats["overall"]["units"] == 9
    assert stats["models"]["blip"]["units"] == 5 and stats["models"]["qwen"]["units"] == 4
    assert stats["overall"]["reviews"] == sum(v is not None for vs in TABLE.values() for v in vs)


def test_every_reviewer_pair_matches_cohen_kappa_on_shared_captions(stats: dict) -> None:
    pairs = {tuple(p["reviewers"]): p for p in stats["pairs"]}
    assert set(pairs) == {("Ann", "Bob"), ("Ann", "Cy"), ("Bob", "Cy")}
    for (a, b), pair in pairs.items():
        ia, ib = REVIEWERS.index(a), REVIEWERS.index(b)
        shared = [(vs[ia], vs[ib]) for vs in TABLE.values() if vs[ia] and vs[ib]]
        first, second = [CODE[x] for x, _ in shared], [CODE[y] for _, y in shared]
        assert pair["n"] == len(shared)
        assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(first, second, labels=range(4)))


def test_category_agreement_is_the_share_of_multiply_rated_captions_without_a_split(stats: dict) -> None:
    multi = [(m, i) for (m, i), vs in TABLE.items() if sum(v is not None for v in vs) >= 2]
    agree = 0
    for model, image in multi:
        flags = {(model, image, r) in LATERALITY
                 for r, v in zip(REVIEWERS, TABLE[(model, image)]) if v is not None}
        agree += len(flags) == 1
    entry = stats["categories"]["wrong_laterality"]
    assert entry["units"] == len(multi) and entry["agreement_share"] == pytest.approx(agree / len(multi))
    assert set(stats["categories"]) >= {"wrong_modality", "not_a_caption"}


def test_shares_count_reviews_and_intervals_bracket_them(stats: dict, tmp_path: Path) -> None:
    blip = stats["models"]["blip"]
    verdicts = [v for (m, _), vs in TABLE.items() if m == "blip" for v in vs if v]
    assert blip["reviews"] == len(verdicts) and blip["items"] == 6
    for verdict in VERDICTS:
        figure = blip["verdicts"][verdict]
        assert figure["count"] == verdicts.count(verdict)
        assert figure["share"] == pytest.approx(verdicts.count(verdict) / len(verdicts))
        assert 0 <= figure["ci"][0] <= figure["share"] <= figure["ci"][1] <= 1
    assert blip["categories"]["wrong_laterality"]["count"] == 3
    assert blip["clinically_significant"]["count"] == verdicts.count(U)
    assert blip["verdicts"][C]["ci"][0] < blip["verdicts"][C]["ci"][1]  # resampling does vary
    again = filled_store(tmp_path / "again.sqlite", reversed(list(table_reviews())))
    assert review_stats(reviews_frame(again.iter_reviews(), again.categories), (), FAST) == stats


def test_all_equal_verdicts_leave_alpha_and_kappa_undefined_not_zero(tmp_path: Path) -> None:
    table = {key: tuple(C if v else None for v in vs) for key, vs in TABLE.items()}
    store = filled_store(tmp_path / "r.sqlite", table_reviews(table))
    stats = review_stats(reviews_frame(store.iter_reviews(), store.categories), (), FAST)
    text = json.dumps(stats, allow_nan=False)  # no NaN anywhere
    assert stats["overall"]["krippendorff_alpha_ordinal"] is None
    assert "'correct'" in stats["overall"]["krippendorff_alpha_ordinal_undefined"]
    with pytest.warns(RuntimeWarning):  # the reference package cannot give a number either
        assert np.isnan(reference_alpha(table))
    assert all(p["cohen_kappa"] is None and p["cohen_kappa_undefined"] for p in stats["pairs"])
    assert '"cohen_kappa": 0' not in text


def test_a_single_reviewer_has_no_agreement_figures(tmp_path: Path) -> None:
    table = {key: (vs[0], None, None) for key, vs in TABLE.items() if vs[0]}
    store = filled_store(tmp_path / "r.sqlite", table_reviews(table))
    stats = review_stats(reviews_frame(store.iter_reviews(), store.categories), (), FAST)
    json.dumps(stats, allow_nan=False)
    assert stats["overall"]["krippendorff_alpha_ordinal"] is None
    assert "two or more reviewers" in stats["overall"]["krippendorff_alpha_ordinal_undefined"]
    with pytest.raises(ValueError):  # what the reference package says about such data
        krippendorff.alpha(reliability_data=np.array([[CODE[vs[0]] for vs in table.values()]]),
                           level_of_measurement="ordinal")
    assert stats["pairs"] == [] and stats["overall"]["reviewers"] == 1
    assert stats["categories"]["wrong_laterality"]["agreement_share"] is None
    assert stats["models"]["blip"]["verdicts"][C]["count"] == 2  # shares still computed


def test_metric_agreement_is_kendall_tau_b_against_median_verdict(stats: dict) -> None:
    keys = list(TABLE)
    metric = [BLEU[k] for k in keys]
    quality = [3 - np.median([CODE[v] for v in TABLE[k] if v]) for k in keys]
    reference = kendalltau(metric, quality, variant="b")
    entry = stats["metrics"]["bleu4"]
    assert entry["n"] == len(keys)
    assert entry["kendall_tau_b"] == pytest.approx(reference.statistic)
    assert entry["p_value"] == pytest.approx(reference.pvalue)
    assert entry["ci"][0] < entry["kendall_tau_b"] < entry["ci"][1]


def test_bradley_terry_matches_choix_maximum_likelihood() -> None:
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(0)
    truth = np.array([0.8, 0.0, -0.5, -0.3])
    data = []
    for _ in range(400):
        i, j = rng.choice(4, size=2, replace=False)
        p = 1 / (1 + np.exp(truth[j] - truth[i]))
        data.append((i, j) if rng.random() < p else (j, i))
    wins = np.zeros((4, 4))
    for winner, loser in data:
        wins[winner, loser] += 1
    ours = bradley_terry_strengths(wins, prior=0.0)
    reference = choix.ilsr_pairwise(4, data, alpha=0.0, max_iter=1000, tol=1e-12)
    assert ours == pytest.approx(reference - reference.mean(), abs=1e-6)


def test_bradley_terry_from_preferences_counts_ties_and_sets_aside_both_wrong() -> None:
    prefs = []
    for k in range(30):
        prefs.append({"dataset": "d", "image_id": f"i{k}", "model_a": "blip", "model_b": "qwen",
                      "reviewer": "Ann", "choice": "B better" if k % 3 else "tie"})
        prefs.append({"dataset": "d", "image_id": f"i{k}", "model_a": "blip", "model_b": "medblip",
                      "reviewer": "Bob", "choice": "A better" if k % 2 else "both wrong"})
    result = bradley_terry(prefs, FAST)
    assert result["comparisons"] == 45 and result["both_wrong"] == 15
    assert [m["model"] for m in result["models"]] == ["qwen", "blip", "medblip"]
    qwen = result["models"][0]
    assert qwen["wins"] == 20 + 5 and qwen["losses"] == 5  # ties: half a win each way
    for entry in result["models"]:
        assert entry["ci"][0] <= entry["strength"] <= entry["ci"][1]
    assert bradley_terry(prefs, FAST) == result
    json.dumps(result, allow_nan=False)


def test_one_compared_pair_is_not_enough_for_undefined_models() -> None:
    result = bradley_terry([], FAST)
    assert result["ranking"] is None and result["ranking_undefined"]


def test_tables_show_every_section(stats: dict) -> None:
    tables = stats_tables(stats)
    agreement = tables["Agreement (Krippendorff's alpha, ordinal)"]
    assert list(agreement["scope"]) == ["all models", "blip", "qwen"]
    shares = tables["Shares per model (95% bootstrap intervals)"]
    assert {"model", "figure", "share", "ci_low", "ci_high"} <= set(shares.columns)
    assert len(tables["Reviewer pairs (Cohen's kappa)"]) == 3
    plots = plot_frames(stats)
    verdicts, x, y, colour = plots["Verdict shares per model"]
    assert (x, y, colour) == ("model", "share", "figure")
    assert len(verdicts) == 2 * len(VERDICTS) and set(verdicts["figure"]) == set(VERDICTS)
    assert list(plots["Agreement (alpha)"][0]["scope"]) == ["all models", "blip", "qwen"]


def test_a_review_listed_twice_is_refused_not_counted_twice(tmp_path: Path) -> None:
    store = filled_store(tmp_path / "r.sqlite", table_reviews())
    frame = reviews_frame(store.iter_reviews(), store.categories)
    doubled = pd.concat([frame, frame.iloc[:1].assign(reviewer=" ann ")])
    with pytest.raises(ValueError, match="appear twice"):
        review_stats(doubled, (), FAST)


def test_no_reviews_give_undefined_figures_not_an_error() -> None:
    stats = review_stats(reviews_frame([]), [], FAST)
    json.dumps(stats, allow_nan=False)
    assert stats["overall"]["krippendorff_alpha_ordinal"] is None and stats["models"] == {}
    assert stats["overall"]["krippendorff_alpha_ordinal_undefined"] == "no reviews"


def test_store_stats_is_none_without_completed_reviews(tmp_path: Path) -> None:
    from medcap.review import ReviewInput, ReviewKey, ReviewStore

    store = ReviewStore(tmp_path / "r.sqlite")
    assert store_stats(store) is None
    store.save(ReviewInput(key=ReviewKey("d", "i", "m", "Ann"), note="draft only"))
    assert store_stats(store) is None


def test_stats_benchmark_runs_on_a_small_store(tmp_path: Path, capsys) -> None:
    """Keeps benchmarks/bench_reviews_stats.py from rotting (no timing asserts)."""
    from benchmarks import bench_reviews_stats

    argv = ["--sizes", "60", "120", "--bootstrap", "20", "--repeats", "1", "--cache-dir", str(tmp_path)]
    assert bench_reviews_stats.main(argv) == 0
    out = capsys.readouterr().out
    assert "120 vs 60 reviews" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("60 ", "120 "))]
    assert [row[0] for row in rows if len(row) == 10] == ["60", "120"]  # size, 4 x (wall, CPU), per 1k

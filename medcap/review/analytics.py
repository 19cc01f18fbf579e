"""Figures computed from reviews: do reviewers agree, which model is better and how sure are we,
which automatic metric agrees with the clinicians.

Input is plain data, so the CLI, the app and a notebook compute the same numbers:
- a frame of final reviews with the export's columns (`reviews_frame` builds it from a store's
  reviews; a CSV read back from the Export tab has the same columns), one row per review;
- a list of pairwise preferences (objects with dataset, image_id, model_a, model_b, choice).

Units: a *caption* is (dataset, image_id, model), what several reviewers rate and agreement is
measured on; an *item* is (dataset, image_id), what the bootstrap resamples (one image's reviews
move together, so the intervals do not pretend that two verdicts on one image are independent).

Reference packages do the statistics: `krippendorff` (alpha), scikit-learn (Cohen's kappa),
scipy (Kendall's tau-b). A figure that is undefined on the data (alpha when every verdict is the
same, kappa of two constant reviewers, anything with too few ratings) is None with a reason, never
0 or NaN. Verdicts are ordinal codes 0..3 in `VERDICTS` order (correct = 0, unusable = 3).

stats.json (`review_stats`; an undefined figure X is null with "X_undefined": reason beside it):
  schema, settings {bootstrap, seed, confidence, bradley_terry_prior}, verdict_scale
  overall   {krippendorff_alpha_ordinal, units, reviews, captions, items, reviewers}
  models    {<model>: {krippendorff_alpha_ordinal, units, reviews, items,
             verdicts {<verdict>: {count, share, ci: [low, high]}},
             categories {<key>: {count, share, ci}}, clinically_significant {count, share, ci}}}
  pairs     [{reviewers: [a, b], n, cohen_kappa}]   (pairs with at least one shared caption)
  categories {<key>: {agreement_share, units}}     (captions with two or more reviews)
  ranking   [{rank, model, share_correct, ci}]      (by share 'correct', then fewest 'unusable')
  preferences {comparisons, both_wrong, models: [{model, rank, strength, ci, wins, losses}]}
  metrics   {<score>: {kendall_tau_b, p_value, ci, n}}
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from medcap.review.categories import (
    DEFAULT_CATEGORIES, SIGNIFICANT_COLUMN, ErrorCategory, category_column,
)
from medcap.review.export import export_columns, review_export_rows
from medcap.review.records import VERDICTS, Review
from medcap.review.store import reviewer_key

CAPTION_COLUMNS = ("dataset", "image_id", "model")
ITEM_COLUMNS = ("dataset", "image_id")
REQUIRED_COLUMNS = ("dataset", "image_id", "model", "reviewer", "verdict")
TIE_CHOICE, BOTH_WRONG_CHOICE, A_CHOICE, B_CHOICE = "tie", "both wrong", "A better", "B better"
STATS_SCHEMA = "medcap.review-stats/1"
KENDALL_FIELLER_VARIANCE = 0.437  # Fieller, Hartley & Pearson (1957): var(atanh tau) ~ 0.437/(n-4)


@dataclass(frozen=True)
class StatsSettings:
    """Bootstrap size, seed and confidence level; the same settings give the same numbers."""

    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    bt_prior: float = 0.1  # virtual wins each way per compared pair: keeps an unbeaten model finite
    chunk: int = 200  # bootstrap replicates drawn at once (bounds memory on 100k reviews)


@dataclass(frozen=True)
class Figure:
    """A number, or None and why it cannot be computed on this data."""

    value: float | None
    reason: str = ""

    def to_json(self, name: str) -> dict[str, Any]:
        if self.value is None:
            return {name: None, f"{name}_undefined": self.reason}
        return {name: float(self.value)}


def undefined(reason: str) -> Figure:
    return Figure(None, reason)


# ------------------------------------------------------------------------------- input frame
def reviews_frame(reviews: Iterable[Review],
                  categories: Sequence[ErrorCategory] = DEFAULT_CATEGORIES) -> pd.DataFrame:
    """Final reviews as the export's rows (same columns, same values), ready for the figures."""
    rows, columns = review_export_rows([r for r in reviews if not r.is_draft], categories)
    return pd.DataFrame(rows, columns=columns)


def category_keys(frame: pd.DataFrame) -> list[str]:
    """Category keys whose export column is in the frame, in column order."""
    prefix = category_column("")
    return [c[len(prefix):] for c in frame.columns if c.startswith(prefix) and len(c) > len(prefix)]


def score_names(frame: pd.DataFrame) -> list[str]:
    """Automatic metric columns: numeric columns the export does not own for something else."""
    known = set(export_columns([ErrorCategory(k, k, "") for k in category_keys(frame)], []))
    return [c for c in frame.columns if c not in known]


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """Checked copy in a canonical order with integer codes: `verdict_code`, `reviewer_key`,
    `caption` and `item` (so two frames with the same reviews in any order give equal figures)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the reviews lack the column(s) {', '.join(missing)}")
    data = frame.copy()
    for column in REQUIRED_COLUMNS:
        data[column] = data[column].fillna("").astype(str)
    data = data[data["verdict"].str.strip() != ""]  # drafts carry no verdict
    codes = data["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
    unknown = sorted(set(data.loc[codes.isna(), "verdict"]))
    if unknown:
        raise ValueError(f"unknown verdict(s) {unknown}; expected one of {list(VERDICTS)}")
    data["verdict_code"] = codes.astype(np.int64)
    data["reviewer_key"] = data["reviewer"].map(reviewer_key)
    repeated = data.duplicated([*CAPTION_COLUMNS, "reviewer_key"])
    if repeated.any():
        first = data.loc[repeated, [*CAPTION_COLUMNS, "reviewer"]].iloc[0].tolist()
        raise ValueError(f"{int(repeated.sum())} review(s) appear twice (e.g. {first}); "
                         "each reviewer has one review per caption")
    data = data.sort_values([*CAPTION_COLUMNS, "reviewer_key"], kind="stable").reset_index(drop=True)
    data["caption"] = _group_codes(data, list(CAPTION_COLUMNS))
    data["item"] = _group_codes(data, list(ITEM_COLUMNS))
    return data


def _group_codes(data: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return data.groupby(columns, sort=True, observed=True).ngroup().to_numpy()


def _flags(data: pd.DataFrame, column: str) -> np.ndarray:
    """A 1/0 export column as 0/1 integers (empty cells count as 0)."""
    values = pd.to_numeric(data[column], errors="coerce").fillna(0)
    return (values.to_numpy() != 0).astype(np.int64)


# ------------------------------------------------------------------------------- agreement
def reliability_matrix(data: pd.DataFrame) -> np.ndarray:
    """Reviewers x captions matrix of verdict codes, NaN where a reviewer did not rate a caption
    (the layout `krippendorff.alpha` takes)."""
    reviewers, reviewer_index = np.unique(data["reviewer_key"].to_numpy(), return_inverse=True)
    captions, caption_index = np.unique(data["caption"].to_numpy(), return_inverse=True)
    matrix = np.full((len(reviewers), len(captions)), np.nan)
    matrix[reviewer_index, caption_index] = data["verdict_code"].to_numpy()
    return matrix


def krippendorff_alpha(data: pd.DataFrame) -> tuple[Figure, int]:
    """Ordinal Krippendorff's alpha over captions, and the number of captions it rests on
    (those rated by two or more reviewers)."""
    import krippendorff

    if data.empty:
        return undefined("no reviews"), 0
    matrix = reliability_matrix(data)
    paired = (~np.isnan(matrix)).sum(axis=0) >= 2
    units = int(paired.sum())
    if units == 0:
        return undefined("no caption has verdicts from two or more reviewers"), 0
    values = matrix[:, paired]
    values = values[~np.isnan(values)]
    if np.all(values == values[0]):
        return undefined(f"every verdict on the captions rated twice or more is "
                         f"'{VERDICTS[int(values[0])]}': with no variation alpha is undefined"), units
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alpha = krippendorff.alpha(reliability_data=matrix[:, paired], level_of_measurement="ordinal",
                                   value_domain=list(range(len(VERDICTS))))
    if not math.isfinite(alpha):
        return undefined("alpha is undefined on these verdicts (no expected disagreement)"), units
    return Figure(float(alpha)), units


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa of two reviewers on the captions both reviewed."""

    reviewers: tuple[str, str]
    n: int
    kappa: Figure

    def to_json(self) -> dict[str, Any]:
        return {"reviewers": list(self.reviewers), "n": self.n, **self.kappa.to_json("cohen_kappa")}


def reviewer_pairs(data: pd.DataFrame) -> list[PairAgreement]:
    """Every pair of reviewers with at least one caption in common, by display name."""
    if data.empty:
        return []
    names = data.groupby("reviewer_key", sort=True)["reviewer"].first()
    matrix = reliability_matrix(data)
    rated = ~np.isnan(matrix)
    pairs = []
    for i, j in combinations(range(len(names)), 2):
        both = rated[i] & rated[j]
        n = int(both.sum())
        if n == 0:
            continue
        first, second = matrix[i, both].astype(int), matrix[j, both].astype(int)
        pairs.append(PairAgreement(
            reviewers=(names.iloc[i], names.iloc[j]), n=n, kappa=_cohen_kappa(first, second)))
    return pairs


def _cohen_kappa(first: np.ndarray, second: np.ndarray) -> Figure:
    from sklearn.metrics import cohen_kappa_score

    if len(set(first.tolist()) | set(second.tolist())) == 1:
        return undefined(f"both reviewers gave '{VERDICTS[int(first[0])]}' to every shared caption: "
                         "no variation, kappa is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(first, second, labels=list(range(len(VERDICTS))))
    if not math.isfinite(kappa):
        return undefined("kappa is undefined on these verdicts (chance agreement is 1)")
    return Figure(float(kappa))


def category_agreement(data: pd.DataFrame, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per category: the share of captions rated by two or more reviewers on which they all
    ticked it or all left it unticked."""
    counts = data.groupby("caption").size()
    multi = counts[counts >= 2].index
    subset = data[data["caption"].isin(multi)]
    result = {}
    for key in keys:
        if subset.empty:
            figure = undefined("no caption has reviews from two or more reviewers")
        else:
            flags = pd.Series(_flags(subset, category_column(key)), index=subset.index)
            spread = flags.groupby(subset["caption"]).agg(["min", "max"])
            figure = Figure(float((spread["min"] == spread["max"]).mean()))
        result[key] = {"units": int(len(multi)), **figure.to_json("agreement_share")}
    return result


# ------------------------------------------------------------------------------- shares + bootstrap
def _rng(settings: StatsSettings, label: str) -> np.random.Generator:
    """One stream per purpose (shares, preferences), so one cannot shift the other's draws."""
    return np.random.default_rng([settings.seed, zlib.crc32(label.encode("utf-8"))])


def bootstrap_item_weights(n_items: int, settings: StatsSettings, label: str) -> Iterable[np.ndarray]:
    """Chunks of (replicates x items) resampling counts: how often each item is drawn."""
    rng = _rng(settings, label)
    remaining = settings.bootstrap
    while remaining > 0:
        size = min(settings.chunk, remaining)
        draws = rng.integers(0, n_items, size=(size, n_items))
        offsets = (np.arange(size) * n_items)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n_items)
        yield counts.reshape(size, n_items).astype(np.float64)  # float: the products below use BLAS
        remaining -= size


def _interval(replicates: np.ndarray, settings: StatsSettings) -> np.ndarray:
    """Percentile interval along the first axis: shape (2, *rest)."""
    tail = (1 - settings.confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: a model absent from every draw
        return np.nanquantile(replicates, [tail, 1 - tail], axis=0)


def ratio_bootstrap(numerators: np.ndarray, denominators: np.ndarray, settings: StatsSettings,
                    label: str) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates and intervals of sum(numerators) / sum(denominators) over items, with
    items resampled: numerators are (items, groups, figures), denominators (items, groups);
    returns estimates (groups, figures) and intervals (2, groups, figures)."""
    items, groups, figures = numerators.shape
    flat = numerators.reshape(items, groups * figures)
    estimate = numerators.sum(axis=0) / denominators.sum(axis=0)[:, None]
    replicates = []
    for weights in bootstrap_item_weights(items, settings, label):
        totals = (weights @ denominators)[:, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates.append((weights @ flat).reshape(-1, groups, figures) / totals)
    return estimate, _interval(np.concatenate(replicates), settings)


def model_shares(data: pd.DataFrame, keys: Sequence[str], settings: StatsSettings) -> dict[str, dict]:
    """Per model: the share of reviews with each verdict, each category and 'clinically
    significant', with bootstrap intervals. Images are resampled once for all models (a paired
    bootstrap: every model's interval comes from the same resampled images)."""
    if data.empty:
        return {}
    flag_columns = [(key, category_column(key)) for key in keys]
    if SIGNIFICANT_COLUMN in data.columns:
        flag_columns.append((SIGNIFICANT_COLUMN, SIGNIFICANT_COLUMN))
    names = [*VERDICTS, *(name for name, _ in flag_columns)]
    indicators = [np.eye(len(VERDICTS))[data["verdict_code"].to_numpy()]]
    indicators += [_flags(data, column)[:, None].astype(float) for _, column in flag_columns]
    per_review = np.hstack(indicators)
    models, model_index = np.unique(data["model"].to_numpy(), return_inverse=True)
    item_index = data["item"].to_numpy()
    n_items, n_models, n_figures = int(item_index.max()) + 1, len(models), len(names)
    cells = (item_index * n_models + model_index)[:, None] * n_figures + np.arange(n_figures)
    numerators = np.bincount(cells.ravel(), weights=per_review.ravel(),
                             minlength=n_items * n_models * n_figures).reshape(n_items, n_models, n_figures)
    denominators = np.bincount(item_index * n_models + model_index,
                               minlength=n_items * n_models).reshape(n_items, n_models).astype(float)
    estimate, interval = ratio_bootstrap(numerators, denominators, settings, "shares")
    counts = numerators.sum(axis=0)
    result = {}
    for g, model in enumerate(models):
        shares = {name: {"count": int(round(counts[g, k])), "share": float(estimate[g, k]),
                         "ci": [float(interval[0, g, k]), float(interval[1, g, k])]}
                  for k, name in enumerate(names)}
        result[str(model)] = {
            "reviews": int(denominators[:, g].sum()), "items": int((denominators[:, g] > 0).sum()),
            "verdicts": {v: shares[v] for v in VERDICTS},
            "categories": {key: shares[key] for key in keys},
            **({SIGNIFICANT_COLUMN: shares[SIGNIFICANT_COLUMN]} if SIGNIFICANT_COLUMN in shares else {}),
        }
    return result


def verdict_ranking(models: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Models by share of 'correct' (then fewest 'unusable'), with the intervals to judge overlap."""
    best, worst = VERDICTS[0], VERDICTS[-1]
    order = sorted(models, key=lambda m: (-models[m]["verdicts"][best]["share"],
                                          models[m]["verdicts"][worst]["share"], m))
    return [{"rank": rank, "model": m, f"share_{best}": models[m]["verdicts"][best]["share"],
             "ci": models[m]["verdicts"][best]["ci"]} for rank, m in enumerate(order, start=1)]


# ------------------------------------------------------------------------------- Bradley-Terry
def preferences_frame(preferences: Iterable[Any]) -> pd.DataFrame:
    """Preference objects (or mappings) as a frame with the columns the ranking reads."""
    columns = ["dataset", "image_id", "model_a", "model_b", "reviewer", "choice"]
    rows = [{c: (p.get(c) if isinstance(p, Mapping) else getattr(p, c)) for c in columns}
            for p in preferences]
    return pd.DataFrame(rows, columns=columns).astype(str)


def bradley_terry_strengths(wins: np.ndarray, prior: float, compared: np.ndarray | None = None,
                            iterations: int = 2000, tolerance: float = 1e-10) -> np.ndarray:
    """Log-strengths (mean 0) maximising the Bradley-Terry likelihood of `wins` (..., m, m):
    wins[..., i, j] is how often i beat j (ties as half a win each way). Hunter's (2004) MM
    updates, batched over leading axes so bootstrap replicates fit together. `prior` adds that
    many virtual wins each way to every `compared` pair (default: pairs with any game), which
    keeps an unbeaten model's strength finite."""
    wins = np.asarray(wins, dtype=float)
    if compared is None:
        compared = ((wins + np.swapaxes(wins, -1, -2)) > 0).reshape(-1, *wins.shape[-2:]).any(axis=0)
    wins = wins + prior * compared
    games = wins + np.swapaxes(wins, -1, -2)
    won = wins.sum(axis=-1)
    strength = np.ones(wins.shape[:-1])
    for _ in range(iterations):
        pair_sum = strength[..., :, None] + strength[..., None, :]
        denominator = (games / pair_sum).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            updated = np.where(denominator > 0, won / denominator, strength)
        updated = np.where(updated > 0, updated, 1e-300)
        updated /= np.exp(np.log(updated).mean(axis=-1, keepdims=True))
        change = np.max(np.abs(np.log(updated) - np.log(strength)))
        strength = updated
        if change < tolerance:
            break
    return np.log(strength)


def _preference_cells(prefs: pd.DataFrame, models: list[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each preference as win-matrix cells (winner * m + loser) with a weight: 1 for a win, 0.5
    each way for a tie; returns (cells, weights, preference row of each cell)."""
    index = {m: k for k, m in enumerate(models)}
    m = len(models)
    a = prefs["model_a"].map(index).to_numpy(np.int64)
    b = prefs["model_b"].map(index).to_numpy(np.int64)
    choice = prefs["choice"].to_numpy()
    row = np.arange(len(prefs))
    a_won, b_won, tie = choice == A_CHOICE, choice == B_CHOICE, choice == TIE_CHOICE
    cells = np.concatenate([a * m + b, b * m + a])
    weights = np.concatenate([a_won + 0.5 * tie, b_won + 0.5 * tie])
    rows = np.concatenate([row, row])
    keep = weights > 0
    return cells[keep], weights[keep], rows[keep]


def bradley_terry(preferences: Iterable[Any], settings: StatsSettings) -> dict[str, Any]:
    """Bradley-Terry ranking from pairwise preferences with bootstrap intervals over items.

    'tie' counts half a win for each side; 'both wrong' says nothing about which is better and is
    counted but left out of the fit."""
    prefs = preferences_frame(preferences)
    prefs = prefs[prefs["model_a"] != prefs["model_b"]]
    both_wrong = int((prefs["choice"] == BOTH_WRONG_CHOICE).sum())
    unknown = sorted(set(prefs["choice"]) - {A_CHOICE, B_CHOICE, TIE_CHOICE, BOTH_WRONG_CHOICE})
    if unknown:
        raise ValueError(f"unknown preference choice(s) {unknown}")
    prefs = prefs[prefs["choice"] != BOTH_WRONG_CHOICE].sort_values(
        ["dataset", "image_id", "model_a", "model_b", "reviewer"], kind="stable").reset_index(drop=True)
    summary: dict[str, Any] = {"comparisons": int(len(prefs)), "both_wrong": both_wrong, "models": []}
    models = sorted(set(prefs["model_a"]) | set(prefs["model_b"]))
    if len(models) < 2:
        summary.update(undefined("fewer than two models were compared").to_json("ranking"))
        return summary
    m = len(models)
    cells, weights, rows = _preference_cells(prefs, models)
    wins = np.bincount(cells, weights=weights, minlength=m * m).reshape(m, m)
    point = bradley_terry_strengths(wins, settings.bt_prior)
    items = _group_codes(prefs, list(ITEM_COLUMNS))
    n_items = int(items.max()) + 1
    per_item = np.zeros((n_items, m * m))
    np.add.at(per_item, (items[rows], cells), weights)
    compared = (wins + wins.T) > 0
    replicates = [bradley_terry_strengths((w @ per_item).reshape(-1, m, m), settings.bt_prior, compared)
                  for w in bootstrap_item_weights(n_items, settings, "bradley-terry")]
    interval = _interval(np.vstack(replicates), settings)
    order = np.argsort(-point, kind="stable")
    rank = {int(k): r for r, k in enumerate(order, start=1)}
    for k, model in enumerate(models):
        summary["models"].append({
            "model": model, "rank": rank[k], "strength": float(point[k]),
            "ci": [float(interval[0, k]), float(interval[1, k])],
            "wins": float(wins[k].sum()), "losses": float(wins[:, k].sum()),
        })
    summary["models"].sort(key=lambda entry: entry["rank"])
    if not _connected(wins > 0):
        summary["note"] = ("the comparison graph is not connected: strengths of models never "
                           "compared (directly or through others) rest on the prior only")
    return summary


def _connected(edges: np.ndarray) -> bool:
    links = edges | edges.T
    seen, frontier = {0}, [0]
    while frontier:
        node = frontier.pop()
        for other in np.flatnonzero(links[node]):
            if int(other) not in seen:
                seen.add(int(other))
                frontier.append(int(other))
    return len(seen) == len(links)


# ------------------------------------------------------------------------------- metrics vs humans
def metric_agreement(data: pd.DataFrame, metrics: Sequence[str], settings: StatsSettings
                     ) -> dict[str, dict[str, Any]]:
    """Kendall's tau-b between each metric and the reviewers' quality judgement per caption.

    Quality is the median verdict of the caption's reviewers, oriented so that a positive tau
    means the metric agrees (a higher score where reviewers found fewer errors). The interval is
    Fieller's: tanh(atanh(tau) +/- z * sqrt(0.437 / (n - 4)))."""
    from scipy.stats import kendalltau, norm

    quality = (len(VERDICTS) - 1) - data.groupby("caption")["verdict_code"].median()
    result = {}
    z = float(norm.ppf(0.5 + settings.confidence / 2))
    for name in metrics:
        scores = pd.to_numeric(data[name], errors="coerce").replace([np.inf, -np.inf], np.nan)
        values = scores.groupby(data["caption"]).mean()
        keep = values.notna()
        x, y = values[keep].to_numpy(float), quality[keep].to_numpy(float)
        entry: dict[str, Any] = {"n": int(keep.sum())}
        if entry["n"] < 3:
            entry.update(undefined("fewer than 3 reviewed captions have this score").to_json("kendall_tau_b"))
        elif np.ptp(x) == 0 or np.ptp(y) == 0:
            what = "score" if np.ptp(x) == 0 else "verdict"
            entry.update(undefined(f"every caption has the same {what}: tau is undefined").to_json("kendall_tau_b"))
        else:
            test = kendalltau(x, y, variant="b")
            tau = float(test.statistic)
            entry.update(Figure(tau).to_json("kendall_tau_b"))
            entry["p_value"] = float(test.pvalue)
            entry.update(_fieller_interval(tau, entry["n"], z))
        result[name] = entry
    return result


def _fieller_interval(tau: float, n: int, z: float) -> dict[str, Any]:
    if n <= 4 or abs(tau) >= 1:
        return {"ci": None, "ci_undefined": "too few captions or a perfect tau for an interval"}
    half = z * math.sqrt(KENDALL_FIELLER_VARIANCE / (n - 4))
    centre = math.atanh(tau)
    return {"ci": [math.tanh(centre - half), math.tanh(centre + half)]}


# ------------------------------------------------------------------------------- everything
def review_stats(frame: pd.DataFrame, preferences: Iterable[Any] = (),
                 settings: StatsSettings = StatsSettings()) -> dict[str, Any]:
    """The stats.json document (see README, "Review analytics")."""
    data = prepare(frame)
    keys = category_keys(data)
    alpha, units = krippendorff_alpha(data)
    models: dict[str, dict[str, Any]] = {}
    for model, rows in data.groupby("model", sort=True):
        model_alpha, model_units = krippendorff_alpha(rows)
        models[str(model)] = {**model_alpha.to_json("krippendorff_alpha_ordinal"), "units": model_units}
    for model, shares in model_shares(data, keys, settings).items():
        models[model].update(shares)
    return {
        "schema": STATS_SCHEMA,
        "settings": {"bootstrap": settings.bootstrap, "seed": settings.seed,
                     "confidence": settings.confidence, "bradley_terry_prior": settings.bt_prior},
        "verdict_scale": list(VERDICTS),
        "overall": {**alpha.to_json("krippendorff_alpha_ordinal"), "units": units,
                    "reviews": int(len(data)), "captions": int(data["caption"].nunique()),
                    "items": int(data["item"].nunique()), "reviewers": int(data["reviewer_key"].nunique())},
        "models": models,
        "pairs": [pair.to_json() for pair in reviewer_pairs(data)],
        "categories": category_agreement(data, keys),
        "ranking": verdict_ranking(models),
        "preferences": bradley_terry(preferences, settings),
        "metrics": metric_agreement(data, score_names(frame), settings),
    }


def store_stats(store: Any, dataset: str | None = None,
                settings: StatsSettings = StatsSettings()) -> dict[str, Any] | None:
    """`review_stats` of a ReviewStore's completed reviews and preferences (None when it has no
    completed review): what `medcap reviews stats` and an app view compute on demand."""
    frame = reviews_frame(store.iter_reviews(dataset), store.categories)
    if frame.empty:
        return None
    return review_stats(frame, store.preferences(dataset), settings)


# ------------------------------------------------------------------------------- tables
def stats_tables(stats: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The stats document as titled long-format tables: what `medcap reviews stats` prints and
    what an app view shows; "Shares" and "Preference ranking" plot as bars with ci_low/ci_high
    error bars, "Metrics vs reviewers" as one bar per metric."""
    alpha = "krippendorff_alpha_ordinal"
    scopes = [("all models", stats["overall"])] + list(stats["models"].items())
    return {
        "Agreement (Krippendorff's alpha, ordinal)": pd.DataFrame(
            [{"scope": name, "alpha": entry[alpha], "units": entry["units"],
              "note": entry.get(f"{alpha}_undefined", "")} for name, entry in scopes],
            columns=["scope", "alpha", "units", "note"]),
        "Reviewer pairs (Cohen's kappa)": pd.DataFrame(
            [{"reviewer_a": p["reviewers"][0], "reviewer_b": p["reviewers"][1], "n": p["n"],
              "kappa": p["cohen_kappa"], "note": p.get("cohen_kappa_undefined", "")}
             for p in stats["pairs"]],
            columns=["reviewer_a", "reviewer_b", "n", "kappa", "note"]),
        "Error categories (reviewers agree)": pd.DataFrame(
            [{"category": key, "agreement_share": e["agreement_share"], "units": e["units"],
              "note": e.get("agreement_share_undefined", "")} for key, e in stats["categories"].items()],
            columns=["category", "agreement_share", "units", "note"]),
        "Shares per model (95% bootstrap intervals)": _shares_table(stats),
        "Preference ranking (Bradley-Terry)": pd.DataFrame(
            [{"rank": m["rank"], "model": m["model"], "strength": m["strength"], "ci_low": m["ci"][0],
              "ci_high": m["ci"][1], "wins": m["wins"], "losses": m["losses"]}
             for m in stats["preferences"]["models"]],
            columns=["rank", "model", "strength", "ci_low", "ci_high", "wins", "losses"]),
        "Metrics vs reviewers (Kendall's tau-b)": pd.DataFrame(
            [{"metric": name, "tau_b": e["kendall_tau_b"], "ci_low": (e.get("ci") or [None, None])[0],
              "ci_high": (e.get("ci") or [None, None])[1], "p_value": e.get("p_value"), "n": e["n"],
              "note": e.get("kendall_tau_b_undefined") or _ci_note(e)} for name, e in stats["metrics"].items()],
            columns=["metric", "tau_b", "ci_low", "ci_high", "p_value", "n", "note"]),
    }


def _ci_note(entry: Mapping[str, Any]) -> str:
    return f"no interval: {entry['ci_undefined']}" if entry.get("ci_undefined") else ""


def _shares_table(stats: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for model, entry in stats["models"].items():
        groups = [("verdict", entry.get("verdicts", {})), ("category", entry.get("categories", {}))]
        if SIGNIFICANT_COLUMN in entry:
            groups.append(("flag", {SIGNIFICANT_COLUMN: entry[SIGNIFICANT_COLUMN]}))
        for kind, figures in groups:
            rows += [{"model": model, "kind": kind, "figure": name, "count": f["count"],
                      "share": f["share"], "ci_low": f["ci"][0], "ci_high": f["ci"][1]}
                     for name, f in figures.items()]
    return pd.DataFrame(rows, columns=["model", "kind", "figure", "count", "share", "ci_low", "ci_high"])


PLOTS = {  # plot title -> (table, filter on "kind" or None, x, y, colour)
    "Verdict shares per model": ("Shares per model (95% bootstrap intervals)", "verdict", "model", "share", "figure"),
    "Error category shares per model": ("Shares per model (95% bootstrap intervals)", "category", "model", "share", "figure"),
    "Agreement (alpha)": ("Agreement (Krippendorff's alpha, ordinal)", None, "scope", "alpha", None),
    "Reviewer pair agreement (kappa)": ("Reviewer pairs (Cohen's kappa)", None, "reviewer_a", "kappa", "reviewer_b"),
    "Error category agreement": ("Error categories (reviewers agree)", None, "category", "agreement_share", None),
    "Bradley-Terry strength": ("Preference ranking (Bradley-Terry)", None, "model", "strength", None),
    "Metric agreement (tau-b)": ("Metrics vs reviewers (Kendall's tau-b)", None, "metric", "tau_b", None),
}


def plot_frames(stats: Mapping[str, Any]) -> dict[str, tuple[pd.DataFrame, str, str, str | None]]:
    """Per plot: (frame, x, y, colour column or None), bars with ci_low/ci_high where the table
    has them; undefined figures are left out of the plot (the tables say why)."""
    tables = stats_tables(stats)
    plots = {}
    for title, (table, kind, x, y, colour) in PLOTS.items():
        frame = tables[table]
        if kind is not None:
            frame = frame[frame["kind"] == kind]
        plots[title] = (frame[frame[y].notna()].reset_index(drop=True), x, y, colour)
    return plots

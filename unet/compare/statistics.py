"""The statistics of the decoder verdict: which method is best, by how much, and how sure we are.

A comparison trains M methods x S seeds on the same images, and every run writes ``per_image.csv``
(one row per scored image). :func:`load_scores` turns those files into ``scores[method, seed, image]``;
:func:`analyze` computes from it

- each method's mean with a 95 % CI from a two-level bootstrap (seeds, then images, with the same
  image resample for every method in a draw, so the paired structure is kept);
- each pair's difference with its bootstrap CI, a paired sign-flip permutation test over images, a
  t-test over seeds, and Holm's correction across pairs (significant only when all three agree);
- each method's rank distribution under the bootstrap;
- the verdict: the best method, those not significantly worse than it, the effect against a
  reference (``bilinear``) and the seeds needed to separate the top two;

and :func:`verdict_text` says it in plain words, naming the split. numpy only (no scipy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from unet.evaluation.checkerboard import CheckerboardScore
from unet.evaluation.per_image import FILENAME, read_per_image

NO_DIFFERENCE = "no significant difference"
# Above this many images the permutation test samples sign patterns instead of enumerating 2**N.
EXACT_MAX_IMAGES = 14


def higher_is_better(metric: str) -> bool:
    """Whether a larger per-image ``metric`` is better (the checkerboard score is an artifact: lower is better)."""
    return CheckerboardScore.higher_is_better if metric == "checkerboard" else True


# ---------------------------------------------------------------------------------------------------
# Loading per-image scores


@dataclass(frozen=True)
class Scores:
    """Per-image scores of a comparison: ``values[method, seed, image]``, shape (M, S, N), no NaN.

    ``dropped_images`` were undefined (an empty cell) in at least one run and are left out of every
    method, so the comparison stays paired; ``excluded_runs`` are runs left out, each with why.
    """

    metric: str
    split: str
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    images: tuple[str, ...]
    values: np.ndarray
    dropped_images: tuple[str, ...] = ()
    excluded_runs: tuple[str, ...] = ()


def run_scores(path: str | Path, metric: str, split: str) -> dict[str, float]:
    """``{image: score}`` of one run's ``per_image.csv`` for ``metric`` on ``split`` (NaN where the cell is empty).

    The file is read by :func:`unet.evaluation.per_image.read_per_image` (its one reader); this adds
    what a comparison needs: the column and the split present, each image once.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run wrote no per-image scores")
    try:
        rows = read_per_image(path)
    except ValueError as error:
        raise ValueError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    if rows and metric not in rows[0]:
        raise ValueError(f"{path} has no column {metric!r} (columns: {', '.join(map(str, rows[0]))})")
    scores: dict[str, float] = {}
    for row in rows:
        if row["split"] != split:
            continue
        image = str(row["image"])
        if image in scores:
            raise ValueError(f"{path}: image {image!r} appears twice in split {split!r}")
        scores[image] = float(row[metric])
    if not scores:
        splits = ", ".join(sorted({str(row["split"]) for row in rows})) or "none"
        raise ValueError(f"{path} has no rows of split {split!r} (splits present: {splits})")
    return scores


def load_scores(
    records: Sequence[Mapping[str, Any]], metric: str, split: str, file_name: str = FILENAME
) -> Scores:
    """``scores[method, seed, image]`` of ``metric`` on ``split`` from the ``per_image.csv`` of each ok run.

    ``records`` are :func:`~unet.compare.runs.collect_records`'s. Failed runs are left out; so that
    every method is scored on the same seeds, a seed is kept only where every method with an ok run
    succeeded (the others are listed in ``excluded_runs``). Images are matched by name: a run that
    lacks an image of the first run, or has one more, is an error naming the run and the image.
    Images undefined in any run are dropped from all (``dropped_images``).
    """
    ok = [record for record in records if record.get("status") == "ok"]
    excluded = [
        f"{record['method']} seed {record['seed']}: failed"
        for record in records
        if record.get("status") != "ok"
    ]
    methods = list(dict.fromkeys(record["method"] for record in ok))
    if not methods:
        raise ValueError("no successful run to take per-image scores from")
    seeds_of = {method: {record["seed"] for record in ok if record["method"] == method} for method in methods}
    seeds = [
        seed
        for seed in dict.fromkeys(record["seed"] for record in ok)
        if all(seed in seeds_of[m] for m in methods)
    ]
    if not seeds:
        raise ValueError(f"no seed succeeded for every method ({', '.join(methods)}): nothing is paired")
    excluded += [
        f"{record['method']} seed {record['seed']}: seed not successful for every method"
        for record in ok
        if record["seed"] not in seeds
    ]
    runs = {(record["method"], record["seed"]): record for record in ok}
    images: list[str] | None = None
    first_run = ""
    values = np.empty((len(methods), len(seeds), 0))
    for m, method in enumerate(methods):
        for s, seed in enumerate(seeds):
            run_dir = Path(runs[method, seed]["run_dir"])
            scores = run_scores(run_dir / file_name, metric, split)
            if images is None:
                images, first_run = list(scores), str(run_dir)
                values = np.full((len(methods), len(seeds), len(images)), math.nan)
            missing = [image for image in images if image not in scores]
            if missing:
                raise ValueError(
                    f"run {run_dir} has no {split!r} score for image {missing[0]!r} of run {first_run} "
                    f"({len(missing)} missing): the methods must be scored on the same images"
                )
            if len(scores) != len(images):
                extra = next(image for image in scores if image not in set(images))
                raise ValueError(
                    f"run {run_dir} scores image {extra!r} on {split!r}, which run {first_run} does not: "
                    "the methods must be scored on the same images"
                )
            values[m, s] = [scores[image] for image in images]
    assert images is not None
    defined = ~np.isnan(values).any(axis=(0, 1))
    if not defined.any():
        raise ValueError(
            f"{metric!r} on {split!r} is undefined (empty) for every image in some run: nothing to compare"
        )
    return Scores(
        metric=metric,
        split=split,
        methods=tuple(methods),
        seeds=tuple(seeds),
        images=tuple(image for image, keep in zip(images, defined, strict=True) if keep),
        values=values[:, :, defined],
        dropped_images=tuple(image for image, keep in zip(images, defined, strict=True) if not keep),
        excluded_runs=tuple(excluded),
    )


# ---------------------------------------------------------------------------------------------------
# The building blocks


def bootstrap_means(values: np.ndarray, n_draws: int = 2000, seed: int = 0, chunk: int = 256) -> np.ndarray:
    """Means of ``values`` (M, S, N) under a two-level bootstrap: (n_draws, M).

    Each draw resamples the S seeds with replacement, then the N images with replacement; the same
    seed and image resample serves every method, so differences of the columns are paired
    differences. Resampling as counts turns each draw into two weighted sums (no index copies).
    Resampling both levels of a crossed design slightly over-counts the seed x image interaction,
    which errs on the side of wider intervals; with few seeds the seed level is under-counted
    (a bootstrap of 5 values), which the interaction partly offsets (see the tests' coverage).
    """
    n_methods, n_seeds, n_images = values.shape
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_draws).astype(np.float64)
    image_counts = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=n_draws).astype(np.float64)
    by_seed = values.transpose(1, 0, 2).reshape(n_seeds, n_methods * n_images)  # (S, M*N)
    means = np.empty((n_draws, n_methods))
    for start in range(0, n_draws, chunk):
        stop = min(start + chunk, n_draws)
        # (b, M, N): each image's mean over the resampled seeds (times S), per method
        per_image = (seed_counts[start:stop] @ by_seed).reshape(stop - start, n_methods, n_images)
        means[start:stop] = np.matmul(per_image, image_counts[start:stop, :, None])[..., 0]
    return means / (n_seeds * n_images)


def percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap ``draws`` along axis 0: (low, high)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def sign_flip_pvalues(differences: np.ndarray, n_permutations: int = 10000, seed: int = 0) -> np.ndarray:
    """Two-sided p-values of paired sign-flip permutation tests of a zero mean difference: (P,).

    ``differences`` is (N, P): per-image differences of P pairs (averaged over seeds). Chosen over
    Wilcoxon's normal approximation because test splits are often small (a handful of images),
    where that approximation is poor, while the permutation test is exact for any N (all 2**N sign
    patterns up to :data:`EXACT_MAX_IMAGES` images, else ``n_permutations`` random patterns with
    p = (1 + hits) / (1 + n_permutations), still a valid p-value); it tests the mean, the same
    quantity the CIs and the verdict report; zero differences and ties need no special rule.
    """
    n_images = differences.shape[0]
    if n_images <= EXACT_MAX_IMAGES:
        patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n_images)))  # (2**N, N)
    else:
        rng = np.random.default_rng(seed)
        patterns = rng.choice((1.0, -1.0), size=(n_permutations, n_images))
    observed = np.abs(differences.mean(axis=0))  # (P,)
    permuted = np.abs(patterns @ differences) / n_images  # (F, P)
    tolerance = 1e-12 * np.maximum(1.0, observed)
    hits = (permuted >= observed - tolerance).sum(axis=0)
    if n_images <= EXACT_MAX_IMAGES:
        return hits / len(patterns)
    return (1 + hits) / (1 + len(patterns))


def student_t_pvalue(t: float, df: int) -> float:
    """Two-sided p-value of Student's t with integer ``df`` >= 1, in closed form (Abramowitz & Stegun
    26.7.3-4: a finite series in cos(theta), theta = atan(|t| / sqrt(df))), so no scipy is needed."""
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    if df % 2:
        term = total = cos if df > 1 else 0.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= cos * cos * (2 * k) / (2 * k + 1)
            total += term
        inside = 2 / math.pi * (theta + sin * total)
    else:
        term = total = 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= cos * cos * (2 * k - 1) / (2 * k)
            total += term
        inside = sin * total
    return min(1.0, max(0.0, 1.0 - inside))


def seed_pvalues(differences: np.ndarray) -> np.ndarray:
    """Two-sided one-sample t-test p-values of per-seed mean differences (S, P): (P,).

    The per-image test treats the S trained models as given, so a whole-run shift of one seed (as
    training seeds produce) looks to it like a real difference; this test asks whether the
    difference holds across seeds. NaN with fewer than 2 seeds (the seed variance is unknown).
    """
    n_seeds = differences.shape[0]
    if n_seeds < 2:
        return np.full(differences.shape[1], math.nan)
    mean, std = differences.mean(axis=0), differences.std(axis=0, ddof=1)
    pvalues = []
    for m, s in zip(mean, std, strict=True):
        if s == 0:
            pvalues.append(1.0 if m == 0 else 0.0)
        else:
            pvalues.append(student_t_pvalue(m / (s / math.sqrt(n_seeds)), n_seeds - 1))
    return np.asarray(pvalues)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: the k-th smallest of m is multiplied by
    (m - k + 1), made non-decreasing, capped at 1. Controls the family-wise error across all pairs."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def rank_distribution(draws: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """``[method, k]``: the fraction of bootstrap draws (B, M) in which a method ranks (k + 1)-th: (M, M).

    Methods tied in a draw share the ranks they span equally (two tied for 1st get half of rank 1 and
    half of rank 2 each), so every row and every column sums to 1.
    """
    score = draws if higher_is_better else -draws
    better = (score[:, None, :] > score[:, :, None]).sum(axis=2)  # (B, M): methods strictly better
    tied = (score[:, None, :] == score[:, :, None]).sum(axis=2)  # (B, M): itself included
    rank = np.arange(1, draws.shape[1] + 1)  # (M,)
    spans = (better[..., None] < rank) & (rank <= (better + tied)[..., None])  # (B, M, M)
    return (spans / tied[..., None]).mean(axis=0)


def variance_components(differences: np.ndarray) -> tuple[float, float, float]:
    """(between-seed, between-image, residual) variances of paired differences (S, N), S, N >= 2.

    Two-way random-effects ANOVA without replication (method of moments, negative estimates set to 0):
    ``d[s, i] = delta + seed_s + image_i + residual_si``.
    """
    n_seeds, n_images = differences.shape
    grand = differences.mean()
    seed_means, image_means = differences.mean(axis=1), differences.mean(axis=0)
    residual = differences - seed_means[:, None] - image_means[None, :] + grand
    ms_seed = n_images * ((seed_means - grand) ** 2).sum() / (n_seeds - 1)
    ms_image = n_seeds * ((image_means - grand) ** 2).sum() / (n_images - 1)
    ms_residual = (residual**2).sum() / ((n_seeds - 1) * (n_images - 1))
    return (
        float(max(0.0, (ms_seed - ms_residual) / n_images)),
        float(max(0.0, (ms_image - ms_residual) / n_seeds)),
        float(ms_residual),
    )


def seeds_needed(differences: np.ndarray, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Seeds per method that would separate two methods at ``power``, from their paired differences (S, N).

    With the observed difference delta and variance components (``variance_components``), the mean
    difference over S seeds and the same N images has variance
    ``V(S) = var_seed / S + var_image / N + var_residual / (S N)``; a two-sided test at ``alpha``
    has the power asked for when ``|delta| / sqrt(V(S)) >= z(1 - alpha/2) + z(power)`` (2.80 for
    0.05 and 0.8), i.e. ``S >= (var_seed + var_residual / N) / (delta**2 / z**2 - var_image / N)``.
    Returns that S rounded up (at least 2: the seed variance needs two), ``math.inf`` when no number
    of seeds suffices (delta is 0, or the image-to-image variance alone is too large: more images are
    needed), or ``None`` when it cannot be estimated (fewer than 2 seeds or 2 images).
    """
    n_seeds, n_images = differences.shape
    if n_seeds < 2 or n_images < 2:
        return None
    delta = float(differences.mean())
    var_seed, var_image, var_residual = variance_components(differences)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    room = delta**2 / z**2 - var_image / n_images
    if delta == 0 or room <= 0:
        return math.inf
    return float(max(2, math.ceil((var_seed + var_residual / n_images) / room)))


def standardized_effect(differences: np.ndarray) -> float:
    """Cohen's d_z of per-image paired differences (N,): mean / sample std (0 for no difference at all)."""
    mean = float(differences.mean())
    std = float(differences.std(ddof=1)) if len(differences) > 1 else math.nan
    if std == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / std


# ---------------------------------------------------------------------------------------------------
# The analysis


@dataclass(frozen=True)
class MethodStats:
    """One method: its mean score with the bootstrap CI, and its rank distribution (``rank_share[k]`` =
    fraction of draws at rank k + 1)."""

    method: str
    mean: float
    ci_low: float
    ci_high: float
    rank_share: tuple[float, ...]
    mean_rank: float


@dataclass(frozen=True)
class PairStats:
    """``first - second`` (``first`` the better by mean): the paired difference, its bootstrap CI,
    the per-image permutation p-value and the per-seed t-test p-value (each raw and Holm-adjusted
    across all pairs), d_z over images, and whether the difference is significant: both adjusted
    p-values below alpha and the CI excluding 0; otherwise "no significant difference"."""

    first: str
    second: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    p_seeds: float
    p_seeds_holm: float
    effect_size: float
    significant: bool

    def phrase(self) -> str:
        """``"a better than b"`` or ``"no significant difference"``."""
        return f"{self.first} better than {self.second}" if self.significant else NO_DIFFERENCE


@dataclass(frozen=True)
class Verdict:
    """The decision: the best method, the methods not significantly worse than it, ``best - reference``
    (None where the reference is absent or is the best), and the seeds needed to separate the top two."""

    best: str
    not_worse: tuple[str, ...]
    reference: str
    versus_reference: PairStats | None
    runner_up: str | None
    seeds_needed: float | None


@dataclass(frozen=True)
class Analysis:
    """Everything the report shows of the statistics; ``methods`` best first, ``pairs`` every pair once."""

    metric: str
    split: str
    higher_is_better: bool
    n_seeds: int
    n_images: int
    n_draws: int
    alpha: float
    methods: tuple[MethodStats, ...]
    pairs: tuple[PairStats, ...]
    verdict: Verdict
    dropped_images: tuple[str, ...] = ()
    excluded_runs: tuple[str, ...] = ()

    def pair(self, a: str, b: str) -> PairStats:
        """The statistics of methods ``a`` and ``b`` (in either order)."""
        for pair in self.pairs:
            if {pair.first, pair.second} == {a, b}:
                return pair
        raise KeyError(f"no pair ({a}, {b}) in the analysis")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (:func:`unet.utils.files.write_json` turns inf/NaN into null)."""
        return asdict(self)


def _pair(
    scores: np.ndarray,
    draws: np.ndarray,
    a: int,
    b: int,
    names: Sequence[str],
    tests: Sequence[float],
    alpha: float,
) -> PairStats:
    """The statistics of methods ``a`` and ``b``; ``tests`` = (p, p Holm, p seeds, p seeds Holm)."""
    low, high = percentile_ci(draws[:, a] - draws[:, b])
    p, p_holm, p_seeds, p_seeds_holm = (float(x) for x in tests)
    return PairStats(
        first=names[a],
        second=names[b],
        difference=float(scores[a].mean() - scores[b].mean()),
        ci_low=float(low),
        ci_high=float(high),
        p_value=p,
        p_holm=p_holm,
        p_seeds=p_seeds,
        p_seeds_holm=p_seeds_holm,
        effect_size=standardized_effect(scores[a].mean(axis=0) - scores[b].mean(axis=0)),
        significant=bool(p_holm < alpha and p_seeds_holm < alpha and not low <= 0 <= high),
    )


def analyze(
    scores: Scores,
    reference: str = "bilinear",
    n_draws: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    larger_is_better: bool | None = None,
    n_permutations: int = 10000,
) -> Analysis:
    """Means with CIs, paired differences with tests, rank stability and the verdict of ``scores``.

    ``larger_is_better`` defaults to :func:`higher_is_better` of the metric; ``seed`` makes the
    bootstrap and the permutation test reproducible. A pair is significant only when three things
    agree: the per-image permutation test (Holm across pairs), the per-seed t-test (Holm across
    pairs) and the bootstrap CI excluding 0. The per-image test alone treats the trained models as
    given and calls a lucky seed a difference: with identical methods whose runs shift as a whole
    from seed to seed, it (even with the CI) flagged about a quarter of simulated comparisons;
    the seed test brings that back under alpha (tests/test_compare_statistics.py measures both).
    """
    direction = higher_is_better(scores.metric) if larger_is_better is None else larger_is_better
    sign = 1.0 if direction else -1.0
    values = scores.values
    order = np.argsort(-sign * values.mean(axis=(1, 2)), kind="stable")
    values = values[order]
    names = [scores.methods[i] for i in order]
    n_methods = len(names)
    draws = bootstrap_means(values, n_draws, seed)
    low, high = percentile_ci(draws)
    ranks = rank_distribution(draws, direction)
    methods = tuple(
        MethodStats(
            method=names[m],
            mean=float(values[m].mean()),
            ci_low=float(low[m]),
            ci_high=float(high[m]),
            rank_share=tuple(float(x) for x in ranks[m]),
            mean_rank=float((ranks[m] * np.arange(1, n_methods + 1)).sum()),
        )
        for m in range(n_methods)
    )
    index_pairs = list(itertools.combinations(range(n_methods), 2))
    pairs: tuple[PairStats, ...] = ()
    if index_pairs:
        per_image = values.mean(axis=1)  # (M, N): averaged over seeds
        per_seed = values.mean(axis=2)  # (M, S): averaged over images
        by_image = np.stack([per_image[a] - per_image[b] for a, b in index_pairs], axis=1)  # (N, P)
        by_seed = np.stack([per_seed[a] - per_seed[b] for a, b in index_pairs], axis=1)  # (S, P)
        p_images, p_seeds = sign_flip_pvalues(by_image, n_permutations, seed), seed_pvalues(by_seed)
        tests = np.stack([p_images, holm(p_images), p_seeds, holm(p_seeds)], axis=1)  # (P, 4)
        pairs = tuple(
            _pair(values, draws, a, b, names, row, alpha)
            for (a, b), row in zip(index_pairs, tests, strict=True)
        )
    best = names[0]
    not_worse = tuple(name for name in names[1:] if not _find(pairs, best, name).significant)
    versus = None
    if reference in names and reference != best:
        versus = _find(pairs, best, reference)
    runner_up = names[1] if n_methods > 1 else None
    needed = seeds_needed(sign * (values[0] - values[1]), alpha) if runner_up else None
    return Analysis(
        metric=scores.metric,
        split=scores.split,
        higher_is_better=direction,
        n_seeds=values.shape[1],
        n_images=values.shape[2],
        n_draws=n_draws,
        alpha=alpha,
        methods=methods,
        pairs=pairs,
        verdict=Verdict(best, not_worse, reference, versus, runner_up, needed),
        dropped_images=scores.dropped_images,
        excluded_runs=scores.excluded_runs,
    )


def _find(pairs: Sequence[PairStats], a: str, b: str) -> PairStats:
    return next(pair for pair in pairs if {pair.first, pair.second} == {a, b})


# ---------------------------------------------------------------------------------------------------
# In words


def _interval(low: float, high: float, digits: int, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"95 % CI {fmt.format(low)} to {fmt.format(high)}"


def verdict_text(analysis: Analysis, digits: int = 3) -> str:
    """The verdict in plain words, naming the metric, the split, the seeds and the images it rests on."""
    v, a = analysis.verdict, analysis
    stats = {m.method: m for m in a.methods}
    best = stats[v.best]
    lines = [
        f"On the {a.split} split ({a.metric}, {a.n_seeds} seeds x {a.n_images} images, "
        f"{'higher' if a.higher_is_better else 'lower'} is better): "
        f"{v.best} is best with {best.mean:.{digits}f} ({_interval(best.ci_low, best.ci_high, digits)}), "
        f"ranked first in {100 * best.rank_share[0]:.0f} % of {a.n_draws} bootstrap draws."
    ]
    if v.runner_up is None:
        lines.append("It is the only method compared.")
    elif v.not_worse:
        lines.append(f"Not significantly worse than {v.best} ({NO_DIFFERENCE}): {', '.join(v.not_worse)}.")
    else:
        lines.append(f"{v.best} is significantly better than every other method.")
    if v.versus_reference is not None:
        pair = v.versus_reference
        lines.append(
            f"{v.best} vs {v.reference}: {pair.difference:+.{digits}f} "
            f"({_interval(pair.ci_low, pair.ci_high, digits, signed=True)}, d_z = {pair.effect_size:.2f}, "
            f"Holm-adjusted p = {pair.p_holm:.2g} over images, {pair.p_seeds_holm:.2g} over seeds): "
            f"{'a significant difference' if pair.significant else NO_DIFFERENCE}."
        )
    elif v.reference == v.best:
        lines.append(f"The reference {v.reference} is itself the best.")
    else:
        lines.append(f"The reference {v.reference} is not among the methods compared.")
    if v.runner_up is not None:
        if v.seeds_needed is None:
            lines.append("Too few seeds or images to estimate how many seeds would separate the top two.")
        elif math.isinf(v.seeds_needed):
            lines.append(
                f"No number of seeds would separate {v.best} from {v.runner_up} at 80 % power on "
                f"{a.n_images} images: their observed difference is too small for the image-to-image variance."
            )
        else:
            lines.append(
                f"Separating {v.best} from {v.runner_up} at 80 % power (alpha {a.alpha}) needs about "
                f"{v.seeds_needed:.0f} seeds per method, from the observed variance ({a.n_seeds} were run)."
            )
    if a.dropped_images:
        lines.append(f"{len(a.dropped_images)} images with an undefined score in some run were left out.")
    if a.excluded_runs:
        lines.append(f"{len(a.excluded_runs)} runs were left out: {'; '.join(a.excluded_runs)}.")
    return " ".join(lines)

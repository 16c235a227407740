"""The verdict of a comparison: each method's mean with its CI and rank shares, every pair's difference
with its tests, the best method, those not significantly worse, the effect against a reference and
the seeds needed to separate the top two (:func:`analyze`), and all of it in plain words
(:func:`verdict_text`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unet.compare.statistics.scores import Scores
from unet.compare.statistics.significance import (
    bootstrap_means,
    holm,
    percentile_ci,
    rank_distribution,
    seed_pvalues,
    seeds_needed,
    sign_flip_pvalues,
    standardized_effect,
)
from unet.evaluation.checkerboard import CheckerboardScore

NO_DIFFERENCE = "no significant difference"
# The smallest design whose ranking the verdict stands behind: with fewer seeds the test over seeds has
# (almost) no power and the bootstrap cannot see seed-to-seed variation; with fewer images neither the
# per-image test nor its intervals are worth much. Below either, the verdict says so first.
MIN_SEEDS = 3
MIN_IMAGES = 10


def higher_is_better(metric: str) -> bool:
    """Whether a larger per-image ``metric`` is better (the checkerboard score is an artifact: lower is better)."""
    return CheckerboardScore.higher_is_better if metric == "checkerboard" else True


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


def _method_stats(
    names: Sequence[str], values: np.ndarray, draws: np.ndarray, direction: bool
) -> tuple[MethodStats, ...]:
    """Each method's mean of ``values`` (M, S, N), its bootstrap CI and rank shares from ``draws`` (B, M)."""
    low, high = percentile_ci(draws)
    ranks = rank_distribution(draws, direction)
    positions = np.arange(1, len(names) + 1)
    return tuple(
        MethodStats(
            method=name,
            mean=float(values[m].mean()),
            ci_low=float(low[m]),
            ci_high=float(high[m]),
            rank_share=tuple(float(x) for x in ranks[m]),
            mean_rank=float((ranks[m] * positions).sum()),
        )
        for m, name in enumerate(names)
    )


def _pair_stats(
    values: np.ndarray,
    draws: np.ndarray,
    names: Sequence[str],
    alpha: float,
    n_permutations: int,
    seed: int,
) -> tuple[PairStats, ...]:
    """Every pair of methods once, tested over images and over seeds, each test Holm-adjusted across pairs."""
    index_pairs = list(itertools.combinations(range(len(names)), 2))
    if not index_pairs:
        return ()
    per_image = values.mean(axis=1)  # (M, N): averaged over seeds
    per_seed = values.mean(axis=2)  # (M, S): averaged over images
    by_image = np.stack([per_image[a] - per_image[b] for a, b in index_pairs], axis=1)  # (N, P)
    by_seed = np.stack([per_seed[a] - per_seed[b] for a, b in index_pairs], axis=1)  # (S, P)
    p_images, p_seeds = sign_flip_pvalues(by_image, n_permutations, seed), seed_pvalues(by_seed)
    tests = np.stack([p_images, holm(p_images), p_seeds, holm(p_seeds)], axis=1)  # (P, 4)
    return tuple(
        _pair(values, draws, a, b, names, row, alpha) for (a, b), row in zip(index_pairs, tests, strict=True)
    )


def _verdict(
    names: Sequence[str],
    values: np.ndarray,
    pairs: Sequence[PairStats],
    reference: str,
    sign: float,
    alpha: float,
) -> Verdict:
    """The decision from methods ranked best first (``names``, ``values`` (M, S, N)) and their pairs."""
    best = names[0]
    not_worse = tuple(name for name in names[1:] if not _find(pairs, best, name).significant)
    versus = _find(pairs, best, reference) if reference in names and reference != best else None
    runner_up = names[1] if len(names) > 1 else None
    needed = seeds_needed(sign * (values[0] - values[1]), alpha) if runner_up else None
    return Verdict(best, not_worse, reference, versus, runner_up, needed)


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
    the seed test brings that back under alpha (tests/test_compare_verdict.py measures both).
    """
    direction = higher_is_better(scores.metric) if larger_is_better is None else larger_is_better
    sign = 1.0 if direction else -1.0
    order = np.argsort(-sign * scores.values.mean(axis=(1, 2)), kind="stable")
    values = scores.values[order]  # best first
    names = [scores.methods[i] for i in order]
    draws = bootstrap_means(values, n_draws, seed)
    pairs = _pair_stats(values, draws, names, alpha, n_permutations, seed)
    return Analysis(
        metric=scores.metric,
        split=scores.split,
        higher_is_better=direction,
        n_seeds=values.shape[1],
        n_images=values.shape[2],
        n_draws=n_draws,
        alpha=alpha,
        methods=_method_stats(names, values, draws, direction),
        pairs=pairs,
        verdict=_verdict(names, values, pairs, reference, sign, alpha),
        dropped_images=scores.dropped_images,
        excluded_runs=scores.excluded_runs,
    )


def _find(pairs: Sequence[PairStats], a: str, b: str) -> PairStats:
    return next(pair for pair in pairs if {pair.first, pair.second} == {a, b})


# -- in words ---------------------------------------------------------------------------------------


def _interval(low: float, high: float, digits: int, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"95 % CI {fmt.format(low)} to {fmt.format(high)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def too_small(analysis: Analysis) -> bool:
    """Whether the design is below :data:`MIN_SEEDS` seeds or :data:`MIN_IMAGES` scored images."""
    return analysis.n_seeds < MIN_SEEDS or analysis.n_images < MIN_IMAGES


def _pair_outcome(pair: PairStats, analysis: Analysis) -> str:
    """The test's outcome of ``pair``; where its CI excludes 0 but the tests do not agree, why not."""
    if pair.significant:
        return "a significant difference"
    if pair.ci_low <= 0 <= pair.ci_high:
        return NO_DIFFERENCE
    failed = []
    if not pair.p_holm < analysis.alpha:
        failed.append(f"the test over images gives p = {pair.p_holm:.2g}")
    if math.isnan(pair.p_seeds_holm):
        failed.append(f"with {_count(analysis.n_seeds, 'seed')} there is no test over seeds")
    elif not pair.p_seeds_holm < analysis.alpha:
        failed.append(f"the test over seeds gives p = {pair.p_seeds_holm:.2g}")
    return f"{NO_DIFFERENCE}: the CI excludes 0, but {' and '.join(failed)}"


def _ranking_line(analysis: Analysis, digits: int) -> str:
    """Who is best, with the rank share and the CI beside what the tests say of it."""
    v, a = analysis.verdict, analysis
    best = next(m for m in a.methods if m.method == v.best)
    share = f"ranked first in {100 * best.rank_share[0]:.0f} % of {a.n_draws} bootstrap draws"
    mean = f"{best.mean:.{digits}f} ({_interval(best.ci_low, best.ci_high, digits)})"
    context = (
        f"On the {a.split} split ({a.metric}, {_count(a.n_seeds, 'seed')} x {_count(a.n_images, 'image')}, "
        f"{'higher' if a.higher_is_better else 'lower'} is better): "
    )
    if v.runner_up is None:
        return f"{context}{v.best} is best with {mean}, {share}. It is the only method compared."
    if not v.not_worse:
        return f"{context}{v.best} is best with {mean}, {share}; it is significantly better than every other method."
    return (
        f"{context}{v.best} has the highest mean, {mean}, {share}, yet the tests do not rank it above "
        f"the methods not significantly worse than it ({NO_DIFFERENCE}): {', '.join(v.not_worse)}."
    )


def verdict_text(analysis: Analysis, digits: int = 3) -> str:
    """The verdict in plain words, naming the metric, the split, the seeds and the images it rests on.

    Below :data:`MIN_SEEDS` seeds or :data:`MIN_IMAGES` images it first says that the design cannot
    support a ranking; a rank share or a CI is always given beside what the tests make of it.
    """
    v, a = analysis.verdict, analysis
    lines = []
    if too_small(a) and v.runner_up is not None:
        lines.append(
            f"This design cannot support a ranking: {_count(a.n_seeds, 'seed')} x "
            f"{_count(a.n_images, 'scored image')} is below the minimum of {MIN_SEEDS} seeds and "
            f"{MIN_IMAGES} scored images; what follows describes these runs only."
        )
    lines.append(_ranking_line(a, digits))
    if v.versus_reference is not None:
        pair = v.versus_reference
        lines.append(
            f"{v.best} vs {v.reference}: {pair.difference:+.{digits}f} "
            f"({_interval(pair.ci_low, pair.ci_high, digits, signed=True)}, d_z = {pair.effect_size:.2f}, "
            f"Holm-adjusted p = {pair.p_holm:.2g} over images, {pair.p_seeds_holm:.2g} over seeds): "
            f"{_pair_outcome(pair, a)}."
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

"""The tests and intervals behind the verdict, on plain arrays: a two-level bootstrap, a paired sign-flip
permutation test, a t-test over seeds, Holm's correction, rank shares, and the seeds a difference needs.
numpy only (no scipy)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

# Above this many images the permutation test samples sign patterns instead of enumerating 2**N.
EXACT_MAX_IMAGES = 14


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

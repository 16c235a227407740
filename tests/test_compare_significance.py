"""The verdict's building blocks on hand-made numbers: Holm's correction, the permutation and t-tests,
rank shares, the two-level bootstrap and the seeds a difference needs."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from unet.compare.statistics.significance import (
    bootstrap_means,
    holm,
    rank_distribution,
    seeds_needed,
    sign_flip_pvalues,
    student_t_pvalue,
)


def test_holm_matches_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone at 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_sign_flip_test_is_exact_on_small_sets():
    # N = 3, all positive: only the all-plus and all-minus of the 8 sign patterns reach |mean| = 2
    differences = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(sign_flip_pvalues(differences), [2 / 8, 1.0])
    large = np.random.default_rng(0).normal(0.5, 1.0, size=(40, 1))
    p = sign_flip_pvalues(large, n_permutations=2000, seed=3)
    assert p[0] == sign_flip_pvalues(large, n_permutations=2000, seed=3)[0] and 1 / 2001 <= p[0] < 0.05


@pytest.mark.parametrize(("t", "df"), [(12.706, 1), (4.303, 2), (2.776, 4), (2.571, 5), (2.228, 10)])
def test_student_t_pvalue_matches_the_tables(t, df):
    assert student_t_pvalue(t, df) == pytest.approx(0.05, abs=2e-4)
    assert student_t_pvalue(0.0, df) == pytest.approx(1.0)


def test_rank_distribution_shares_tied_ranks():
    draws = np.array([[3.0, 3.0, 1.0], [1.0, 2.0, 3.0]])  # draw 1: a and b tie for first
    ranks = rank_distribution(draws)
    np.testing.assert_allclose(ranks, [[0.25, 0.25, 0.5], [0.25, 0.75, 0.0], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(rank_distribution(draws, higher_is_better=False)[2], [0.5, 0.0, 0.5])


def test_two_level_bootstrap_spread_matches_the_analytic_standard_error():
    # one seed: only images vary, so the bootstrap SD of the mean is sd * sqrt((N - 1) / N) / sqrt(N)
    values = np.random.default_rng(1).normal(size=(1, 1, 50))
    draws = bootstrap_means(values, n_draws=4000, seed=0)
    expected = values.std() / math.sqrt(50)
    assert draws.std() == pytest.approx(expected, rel=0.06)
    np.testing.assert_array_equal(draws, bootstrap_means(values, n_draws=4000, seed=0))


def test_seeds_needed_follows_the_formula():
    u, w = np.array([-0.02, 0.0, 0.02]), np.array([-0.01, 0.01] * 10)  # no residual: exact components
    differences = 0.01 + u[:, None] + w[None, :]
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    expected = math.ceil(u.var(ddof=1) / (0.01**2 / z**2 - w.var(ddof=1) / 20))
    assert seeds_needed(differences) == expected == 54  # 4e-4 / (1e-4 / 7.85 - 1.05e-4 / 20)
    assert seeds_needed(differences - 0.01) == math.inf  # no observed difference
    assert seeds_needed(0.01 + u[:, None] + 10 * w[None, :]) == math.inf  # the images alone are too noisy
    assert seeds_needed(differences[:1]) is None

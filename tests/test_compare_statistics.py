"""The decoder verdict's statistics on hand-made scores: loading, tests, intervals, ranks and words."""

from __future__ import annotations

import csv
import math
import re
import time
from dataclasses import replace
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from unet.compare.statistics import (
    NO_DIFFERENCE,
    Scores,
    analyze,
    bootstrap_means,
    holm,
    load_scores,
    rank_distribution,
    run_scores,
    seeds_needed,
    sign_flip_pvalues,
    student_t_pvalue,
    verdict_text,
)
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE
from unet.utils.files import read_json, write_json

HEADER = [
    "split",
    "image",
    "miou",
    "dice",
    "pixel_acc",
    "boundary_f1",
    "checkerboard",
    "iou/cell",
    "dice/cell",
]


def write_run(root: Path, method: str, seed: int, miou: dict[str, str | float], split: str = "test") -> dict:
    """A run directory whose per_image.csv scores ``miou`` on ``split`` (and 0.5 on val); its record."""
    run_dir = root / method / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    with (run_dir / PER_IMAGE_FILE).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for image in miou:
            writer.writerow(["val", image, 0.5, 0.5, 0.9, 0.4, 0.01, 0.5, 0.6])
        for image, value in miou.items():
            writer.writerow([split, image, value, 0.7, 0.9, 0.4, 0.01, value, 0.6])
    return {"method": method, "seed": seed, "status": "ok", "error": None, "run_dir": str(run_dir)}


def simulated(
    rng: np.random.Generator,
    effects: tuple[float, ...] = (0.0, 0.0, 0.0),
    seeds: int = 5,
    images: int = 30,
    image_sd: float = 0.1,
    seed_sd: float = 0.0,
    noise_sd: float = 0.05,
) -> Scores:
    """Scores of methods with true means ``0.7 + effects``: a shared image effect (the same images are
    hard for every method), a whole-run shift per (method, seed), and independent per-cell noise."""
    m = len(effects)
    values = (
        0.7
        + np.asarray(effects)[:, None, None]
        + image_sd * rng.normal(size=(1, 1, images))
        + seed_sd * rng.normal(size=(m, seeds, 1))
        + noise_sd * rng.normal(size=(m, seeds, images))
    )
    return Scores(
        metric="miou",
        split="test",
        methods=tuple(f"m{i}" for i in range(m)),
        seeds=tuple(range(seeds)),
        images=tuple(f"{i:02d}.png" for i in range(images)),
        values=values,
    )


# ----------------------------------------------------------------------------------------------- loading


def test_load_scores_matches_images_by_name_and_drops_undefined_ones(tmp_path):
    records = [
        write_run(tmp_path, "bilinear", 0, {"a": 0.1, "b": 0.2, "c": 0.3}),
        write_run(tmp_path, "bilinear", 1, {"c": 0.33, "a": 0.11, "b": 0.22}),  # another row order
        write_run(tmp_path, "nearest", 0, {"a": 0.4, "b": "", "c": 0.6}),  # b undefined in one run
        write_run(tmp_path, "nearest", 1, {"a": 0.44, "b": 0.55, "c": 0.66}),
        {"method": "nearest", "seed": 2, "status": "failed", "error": "boom", "run_dir": str(tmp_path / "x")},
    ]
    scores = load_scores(records, "miou", "test")
    assert scores.methods == ("bilinear", "nearest") and scores.seeds == (0, 1)
    assert scores.images == ("a", "c") and scores.dropped_images == ("b",)
    np.testing.assert_allclose(scores.values, [[[0.1, 0.3], [0.11, 0.33]], [[0.4, 0.6], [0.44, 0.66]]])
    assert scores.excluded_runs == ("nearest seed 2: failed",)
    assert load_scores(records, "miou", "val").values.shape == (2, 2, 3)


def test_a_seed_that_failed_for_one_method_is_left_out_for_every_method(tmp_path):
    records = [
        write_run(tmp_path, method, seed, {"a": 0.1, "b": 0.2}) for method in ("x", "y") for seed in (0, 1)
    ]
    records[3]["status"] = "failed"
    scores = load_scores(records, "miou", "test")
    assert scores.seeds == (0,) and scores.values.shape == (2, 1, 2)
    assert "x seed 1: seed not successful for every method" in scores.excluded_runs


@pytest.mark.parametrize(
    ("other", "named"),
    [({"a": 0.1, "c": 0.2}, "'b'"), ({"a": 0.1, "b": 0.2, "d": 0.3}, "'d'")],
    ids=["missing", "extra"],
)
def test_load_scores_refuses_runs_scored_on_other_images_naming_run_and_image(tmp_path, other, named):
    records = [write_run(tmp_path, "x", 0, {"a": 0.1, "b": 0.2}), write_run(tmp_path, "y", 0, other)]
    with pytest.raises(ValueError, match="same images") as error:
        load_scores(records, "miou", "test")
    assert str(tmp_path / "y" / "seed_0") in str(error.value) and named in str(error.value)


def test_run_scores_says_what_is_wrong_with_the_file(tmp_path):
    record = write_run(tmp_path, "x", 0, {"a": 0.1, "b": "bad"})
    path = Path(record["run_dir"]) / PER_IMAGE_FILE
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}.*'bad'"):
        run_scores(path, "miou", "test")
    path = Path(write_run(tmp_path, "y", 0, {"a": 0.1, "b": 0.2})["run_dir"]) / PER_IMAGE_FILE
    with pytest.raises(ValueError, match="no column 'iou/road'"):
        run_scores(path, "iou/road", "test")
    with pytest.raises(ValueError, match="no rows of split 'train' .*splits present: test, val"):
        run_scores(path, "miou", "train")
    with pytest.raises(FileNotFoundError, match="per_image.csv not found"):
        run_scores(tmp_path / "nowhere" / PER_IMAGE_FILE, "miou", "test")


# ------------------------------------------------------------------------------------- building blocks


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


# ---------------------------------------------------------------------------------------------- analysis


def test_a_method_better_by_construction_is_detected_and_ranked_first():
    scores = simulated(np.random.default_rng(7), effects=(0.0, 0.05, 0.0, 0.01), seed_sd=0.01)
    analysis = analyze(scores, reference="m0")
    assert analysis.verdict.best == "m1" and analysis.methods[0].method == "m1"
    assert analysis.methods[0].rank_share[0] > 0.95
    assert all(analysis.pair("m1", other).significant for other in ("m0", "m2", "m3"))
    assert analysis.verdict.not_worse == ()
    versus = analysis.verdict.versus_reference
    assert versus is not None and versus.ci_low > 0 and versus.effect_size > 1


def test_analysis_is_reproducible_and_fast():
    scores = simulated(np.random.default_rng(0), effects=tuple(0.005 * i for i in range(10)), images=200)
    start = time.perf_counter()
    first = analyze(scores, seed=3)
    elapsed = time.perf_counter() - start
    assert first == analyze(scores, seed=3)  # dataclasses of plain floats compare by value
    assert elapsed < 1.5, f"10 methods x 5 seeds x 200 images took {elapsed:.2f} s"


@pytest.fixture(scope="module")
def null_simulations() -> dict[str, list]:
    """200 comparisons of 3 identical methods (5 seeds x 30 images), without and with whole-run seed shifts."""
    results = {}
    for name, seed_sd in (("noise", 0.0), ("seed shifts", 0.03)):
        results[name] = [
            analyze(simulated(np.random.default_rng(1000 + k), seed_sd=seed_sd), n_draws=1000, seed=k)
            for k in range(200)
        ]
    return results


@pytest.mark.parametrize("case", ["noise", "seed shifts"])
def test_identical_methods_keep_the_familywise_false_positive_rate_at_alpha(null_simulations, case):
    rate = np.mean([any(pair.significant for pair in a.pairs) for a in null_simulations[case]])
    assert rate <= 0.08, f"{case}: {rate:.3f} of comparisons of identical methods found a difference"


@pytest.mark.parametrize("case", ["noise", "seed shifts"])
def test_confidence_intervals_cover_the_true_mean_at_about_the_nominal_rate(null_simulations, case):
    coverage = np.mean([m.ci_low <= 0.7 <= m.ci_high for a in null_simulations[case] for m in a.methods])
    assert 0.85 <= coverage <= 0.99, f"{case}: coverage {coverage:.3f}"


def test_the_verdict_says_no_significant_difference_for_a_tie_and_names_the_split(tmp_path):
    analysis = analyze(simulated(np.random.default_rng(3), effects=(0.0, 0.0)), reference="m1")
    text = verdict_text(analysis)
    assert (
        all(not pair.significant for pair in analysis.pairs) and analysis.pairs[0].phrase() == NO_DIFFERENCE
    )
    assert text.startswith("On the test split (miou, 5 seeds x 30 images")
    assert f"({NO_DIFFERENCE})" in text and f": {NO_DIFFERENCE}." in text
    write_json(tmp_path / "statistics.json", analysis.to_dict())
    assert read_json(tmp_path / "statistics.json")["verdict"]["best"] == analysis.verdict.best


def test_a_lower_is_better_metric_picks_the_lowest_mean():
    scores = simulated(np.random.default_rng(4), effects=(0.0, -0.05, 0.0))
    analysis = analyze(replace(scores, metric="checkerboard", split="val"))
    assert not analysis.higher_is_better and analysis.verdict.best == "m1"
    assert analysis.methods[0].rank_share[0] > 0.95
    assert "On the val split (checkerboard" in verdict_text(analysis) and "lower is better" in verdict_text(
        analysis
    )

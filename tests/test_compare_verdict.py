"""The decoder verdict on simulated scores: a better method found, identical ones not told apart more
often than alpha, intervals that cover the truth, and the verdict in words."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from unet.compare.statistics.scores import Scores
from unet.compare.statistics.verdict import NO_DIFFERENCE, analyze, verdict_text
from unet.utils.files import read_json, write_json


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


def test_one_seed_and_two_images_cannot_support_a_ranking_and_the_verdict_says_so_first():
    # nearest beats bilinear on both images by about 0.0075: every bootstrap draw ranks it first and its
    # CI excludes 0, yet the permutation test over 2 images gives p = 0.5 and 1 seed allows no seed test.
    values = np.array([[[0.800, 0.810]], [[0.7925, 0.8025]]]) + np.array([[[0.0, 0.0005]], [[0.0, 0.0]]])
    scores = Scores("miou", "test", ("nearest", "bilinear"), (0,), ("a.png", "b.png"), values)
    analysis = analyze(scores, reference="bilinear")
    text = verdict_text(analysis)
    assert text.startswith("This design cannot support a ranking: 1 seed x 2 scored images")
    sentences = [sentence for sentence in text.split(". ") if "ranked first" in sentence or "CI" in sentence]
    versus = analysis.verdict.versus_reference
    assert versus is not None and not versus.significant and versus.ci_low > 0  # the disagreement
    for sentence in sentences:  # each share or interval beside what the tests make of it
        assert NO_DIFFERENCE in sentence, sentence
    assert (
        "the CI excludes 0, but the test over images gives p = 0.5 and with 1 seed there is no test over seeds"
        in text
    )


def test_a_design_at_the_minimum_is_ranked_without_the_warning():
    analysis = analyze(simulated(np.random.default_rng(5), effects=(0.0, 0.05), seeds=3, images=10))
    assert not verdict_text(analysis).startswith("This design cannot support")

"""The statistics of the decoder verdict: which method is best, by how much, and how sure we are.

A comparison trains M methods x S seeds on the same images, and every run writes ``per_image.csv``
(one row per scored image). :func:`~.scores.load_scores` turns those files into
``scores[method, seed, image]``; :func:`~.verdict.analyze` computes from it, with the building blocks
of :mod:`~.significance`,

- each method's mean with a 95 % CI from a two-level bootstrap (seeds, then images, with the same
  image resample for every method in a draw, so the paired structure is kept);
- each pair's difference with its bootstrap CI, a paired sign-flip permutation test over images, a
  t-test over seeds, and Holm's correction across pairs (significant only when all three agree);
- each method's rank distribution under the bootstrap;
- the verdict: the best method, those not significantly worse than it, the effect against a
  reference (``bilinear``) and the seeds needed to separate the top two;

and :func:`~.verdict.verdict_text` says it in plain words, naming the split. numpy only (no scipy).
"""

from unet.compare.statistics.scores import Scores, load_scores
from unet.compare.statistics.verdict import NO_DIFFERENCE, Analysis, PairStats, analyze, verdict_text

__all__ = [
    "NO_DIFFERENCE",
    "Analysis",
    "PairStats",
    "Scores",
    "analyze",
    "load_scores",
    "verdict_text",
]

"""Statistics over seeds: intervals, paired tests, multiple-comparison adjustment, power and seed counts, and the
sequential design that races configurations over seeds.

Functions here take arrays and return numbers; the report and ``ablate compare`` build their tables from them.
The seed is the unit: a difference is one number per seed both configurations completed.
"""

from ablate.stats._intervals import BOOTSTRAP_ROUNDS, CONFIDENCE, describe, hierarchical_bootstrap
from ablate.stats._power import ALPHA, MAX_SEEDS, POWER, detectable_difference, power, seeds_needed
from ablate.stats._sequential import SPENDING, Look, SequentialDesign, boundaries, looks, probability_of_improvement
from ablate.stats._tests import WILCOXON_FROM, FriedmanResult, friedman_test, holm, image_test, seed_test

__all__ = [
    "ALPHA",
    "BOOTSTRAP_ROUNDS",
    "CONFIDENCE",
    "MAX_SEEDS",
    "POWER",
    "SPENDING",
    "WILCOXON_FROM",
    "Look",
    "SequentialDesign",
    "boundaries",
    "FriedmanResult",
    "describe",
    "detectable_difference",
    "friedman_test",
    "hierarchical_bootstrap",
    "holm",
    "image_test",
    "looks",
    "power",
    "probability_of_improvement",
    "seed_test",
    "seeds_needed",
]

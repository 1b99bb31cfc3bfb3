"""Experiment statistics in the manner of GrowthBook's gbstats: sufficient statistics as small
frozen dataclasses, and pure tests from two of them to a result dataclass."""

from analysis.experiment_rules import METHODS
from analysis.stats.bayesian import NormalPrior, bayesian_test
from analysis.stats.compare import DailyResult, compare, cumulate, results_over_time
from analysis.stats.corrections import adjust_comparisons, benjamini_hochberg, holm
from analysis.stats.effects import estimate_effect
from analysis.stats.frequentist import sequential_test, welch_test
from analysis.stats.power import (
    MidExperimentPower,
    PowerPlan,
    days_needed,
    mid_experiment_power,
    minimum_detectable_effect,
    plan_experiment,
    power,
    sample_size_per_arm,
)
from analysis.stats.results import Comparison, EffectEstimate
from analysis.stats.srm import SrmResult, srm_check
from analysis.stats.statistics import (
    PostStratified,
    Proportion,
    Quantile,
    Ratio,
    RegressionAdjusted,
    RegressionAdjustedRatio,
    SampleMean,
    Statistic,
    quantile_from_values,
)

__all__ = [
    "METHODS",
    "Comparison",
    "DailyResult",
    "EffectEstimate",
    "MidExperimentPower",
    "NormalPrior",
    "PostStratified",
    "PowerPlan",
    "Proportion",
    "Quantile",
    "Ratio",
    "RegressionAdjusted",
    "RegressionAdjustedRatio",
    "SampleMean",
    "SrmResult",
    "Statistic",
    "adjust_comparisons",
    "bayesian_test",
    "benjamini_hochberg",
    "compare",
    "cumulate",
    "days_needed",
    "estimate_effect",
    "holm",
    "mid_experiment_power",
    "minimum_detectable_effect",
    "plan_experiment",
    "power",
    "quantile_from_values",
    "results_over_time",
    "sample_size_per_arm",
    "sequential_test",
    "srm_check",
    "welch_test",
]

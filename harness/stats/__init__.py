"""Statistics layer: binomial intervals, image-level bootstrap, metrics, paired tests."""

from harness.stats.bootstrap import bootstrap_se, bootstrap_weights, images_to_decide, percentile_bounds
from harness.stats.intervals import clopper_pearson_interval, tail_probability, wilson_interval, z_value
from harness.stats.metrics import grid_balanced_accuracy, grid_rate, point_metrics
from harness.stats.significance import cochrans_q, mcnemar_clustered

__all__ = [
    "bootstrap_se",
    "bootstrap_weights",
    "clopper_pearson_interval",
    "cochrans_q",
    "grid_balanced_accuracy",
    "grid_rate",
    "images_to_decide",
    "mcnemar_clustered",
    "percentile_bounds",
    "point_metrics",
    "tail_probability",
    "wilson_interval",
    "z_value",
]

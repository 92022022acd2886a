"""Measuring generated images: Frechet distances (FID online, FD-<judge> offline), KID,
precision / recall, FD-infinity, and a judge's class agreement, overall and per class.

Pure math on features lives in frechet / kid / prdc; networks in inception / judge; turning
image collections into features (batched, cached) in features; the image-level API in quality;
real images degraded in known ways, to read a score against, in anchors.
"""

from pddlib.data.transforms import as_uint8
from pddlib.metrics.anchors import blurred, degradation_anchors, noise_images
from pddlib.metrics.evaluate import EvalConfig, EvalResult, evaluate_model, generate_samples
from pddlib.metrics.features import FEATURES, extract_features
from pddlib.metrics.frechet import (
    FDInfinity,
    fd_from_features,
    fd_infinity_from_features,
    frechet_distance,
    gaussian_stats,
)
from pddlib.metrics.judge import class_agreement, classify, per_class_agreement
from pddlib.metrics.kid import kid_from_features, mmd2_unbiased
from pddlib.metrics.prdc import PrecisionRecall, precision_recall_from_features
from pddlib.metrics.quality import (
    QualityReport,
    anchor_fds,
    fd,
    fd_infinity,
    fd_name,
    kid,
    precision_recall,
    quality_report,
)
from pddlib.metrics.replication import (
    CopyCheck,
    ReplicationReport,
    check_copies,
    measure_replication,
    record_replication,
    replication,
)

__all__ = [
    "FEATURES",
    "CopyCheck",
    "EvalConfig",
    "EvalResult",
    "FDInfinity",
    "PrecisionRecall",
    "QualityReport",
    "ReplicationReport",
    "anchor_fds",
    "as_uint8",
    "blurred",
    "check_copies",
    "class_agreement",
    "classify",
    "degradation_anchors",
    "evaluate_model",
    "extract_features",
    "fd",
    "fd_from_features",
    "fd_infinity",
    "fd_infinity_from_features",
    "fd_name",
    "frechet_distance",
    "gaussian_stats",
    "generate_samples",
    "kid",
    "kid_from_features",
    "measure_replication",
    "mmd2_unbiased",
    "noise_images",
    "per_class_agreement",
    "precision_recall",
    "precision_recall_from_features",
    "quality_report",
    "record_replication",
    "replication",
]

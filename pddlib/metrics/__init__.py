"""Measuring generated images: Frechet distances (FID online, FD-<judge> offline), KID,
precision / recall, FD-infinity, a judge's class agreement, the classification accuracy score,
replication and the copy guard.

Every comparison through vectors reads one registry of feature spaces (spaces; the types in
featurespace); pure math on features lives in frechet / kid / prdc, the named scores in scores,
nearest neighbours in neighbours; networks in inception / judge / copydetect / sscd; the judges'
training recipe in classifier, and CAS (that recipe trained on samples, tested on real images) in
cas; turning image collections into features (batched, cached) in features; the image-level
API in quality; real images degraded in known ways, to read a score against, in anchors.
"""

from pddlib.data.transforms import as_uint8
from pddlib.metrics.anchors import blurred, degradation_anchors, noise_images
from pddlib.metrics.cas import cas, real_cas
from pddlib.metrics.copyguard import CopyCheck, check_copies
from pddlib.metrics.evaluate import EvalConfig, EvalResult, evaluate_model, generate_samples
from pddlib.metrics.features import extract_features
from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.frechet import (
    FDInfinity,
    fd_from_features,
    fd_infinity_from_features,
    frechet_distance,
    gaussian_stats,
)
from pddlib.metrics.judge import (
    agreement_by_class,
    class_agreement,
    classify,
    confident_agreement,
    per_class_agreement,
)
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
from pddlib.metrics.replication import ReplicationReport, replication
from pddlib.metrics.replication_run import measure_replication, record_replication
from pddlib.metrics.spaces import (
    get_space,
    quality_spaces,
    register,
    replication_spaces,
    unregister,
)

__all__ = [
    "CopyCheck",
    "EvalConfig",
    "EvalResult",
    "Extractor",
    "FDInfinity",
    "FeatureSpace",
    "PrecisionRecall",
    "QualityReport",
    "ReplicationReport",
    "agreement_by_class",
    "anchor_fds",
    "as_uint8",
    "blurred",
    "cas",
    "check_copies",
    "class_agreement",
    "confident_agreement",
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
    "get_space",
    "kid",
    "kid_from_features",
    "measure_replication",
    "mmd2_unbiased",
    "noise_images",
    "per_class_agreement",
    "precision_recall",
    "precision_recall_from_features",
    "quality_report",
    "quality_spaces",
    "real_cas",
    "record_replication",
    "register",
    "replication",
    "replication_spaces",
    "unregister",
]

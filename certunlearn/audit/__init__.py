"""Auditing: membership signals, attack metrics and empirical ε lower bounds (pure numpy/scipy).

* :mod:`certunlearn.audit.signals` — per-example signals from a classifier's outputs (loss,
  confidence, LiRA logit, modified entropy) and the :data:`SIGNALS` registry of membership scores.
* :mod:`certunlearn.audit.metrics` — ROC, AUC with a bootstrap band, balanced accuracy, advantage,
  TPR at fixed FPR (convention ``fpr <= x``) with Clopper–Pearson intervals.
* :mod:`certunlearn.audit.epsilon` — empirical ε lower bounds (Clopper–Pearson with Bonferroni,
  GDP-μ) and the one-run audit of Steinke, Nasr & Jagielski.
* :mod:`certunlearn.audit.unlearning_challenge` — the NeurIPS 2023 unlearning challenge's
  per-example ε, forgetting quality and score, and its population attack (scikit-learn, no torch).

Attacks and shadow models (these import torch; import them as modules, e.g.
``from certunlearn.audit import mia_l, mia_u``):

* :mod:`certunlearn.audit.shadows` — vectorised shadow/reference model training with balanced
  membership and an on-disk cache keyed by the configuration.
* :mod:`certunlearn.audit.mia_l` — ``run_mia_l``, attacks on a model (ours, or a deployed one users
  bring), with the registry of :mod:`certunlearn.audit.attacks` (pure numpy: LOSS, LiRA, RMIA).
* :mod:`certunlearn.audit.features` and :mod:`certunlearn.audit.mia_u` — attacks on the unlearning
  operation (Chen et al. 2021): features, output defences, DegCount/DegRate and the shadow protocol;
  its settings in :mod:`certunlearn.audit.mia_u_spec`, its attack stage in
  :mod:`certunlearn.audit.mia_u_attacks`, its results in :mod:`certunlearn.audit.mia_u_results`.

One convention everywhere: **a membership score is higher for more likely members**. The statistics
modules above the attacks import no torch.

Example:
    >>> import numpy as np
    >>> from certunlearn.audit import attack_metrics, epsilon_lower_bound
    >>> rng = np.random.default_rng(0)
    >>> members, non_members = rng.normal(2.0, 1.0, 500), rng.normal(0.0, 1.0, 500)
    >>> round(attack_metrics(members, non_members, n_bootstrap=0).auc, 2)
    0.93
    >>> bound = epsilon_lower_bound(members, non_members, delta=1e-5)
    >>> 0.0 < bound.epsilon < bound.cap
    True
"""

from certunlearn.audit.epsilon import (
    EpsilonBound,
    epsilon_from_counts,
    epsilon_lower_bound,
    gdp_mu_lower_bound,
    one_run_epsilon,
)
from certunlearn.audit.metrics import (
    TPR_CONVENTION,
    AttackMetrics,
    OperatingPoint,
    RocCurve,
    attack_metrics,
    clopper_pearson,
    log_roc_curve,
    roc_curve,
)
from certunlearn.audit.signals import (
    SIGNALS,
    confidence,
    lira_logit,
    loss,
    membership_scores,
    modified_entropy,
    register_signal,
)
from certunlearn.audit.unlearning_challenge import (
    challenge_epsilon,
    challenge_epsilon_from_rates,
    challenge_score,
    forgetting_quality,
)

__all__ = [
    "SIGNALS",
    "TPR_CONVENTION",
    "AttackMetrics",
    "EpsilonBound",
    "OperatingPoint",
    "RocCurve",
    "attack_metrics",
    "challenge_epsilon",
    "challenge_epsilon_from_rates",
    "challenge_score",
    "clopper_pearson",
    "confidence",
    "epsilon_from_counts",
    "epsilon_lower_bound",
    "forgetting_quality",
    "gdp_mu_lower_bound",
    "lira_logit",
    "log_roc_curve",
    "loss",
    "membership_scores",
    "modified_entropy",
    "one_run_epsilon",
    "register_signal",
    "roc_curve",
]

"""A complete synthetic compliance report, for documentation, tests and trying the renderers.

:func:`example_report` lives in ``audit/`` because it computes realistic attack metrics and ε
lower bounds (:func:`~certunlearn.audit.metrics.attack_metrics`,
:func:`~certunlearn.audit.epsilon.epsilon_lower_bound`) and hands them to
:func:`~certunlearn.report.build.build_report` in the report-entry shapes; ``report/`` never
imports ``audit/``.

Example:
    >>> report = example_report()
    >>> report["verdict"]["status"], report["mia_l"]["attacks"][0]["name"]
    ('PASS', 'loss')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from certunlearn.audit.epsilon import epsilon_lower_bound
from certunlearn.audit.metrics import attack_metrics
from certunlearn.certify.gaussian import gaussian_epsilon
from certunlearn.report.build import build_report
from certunlearn.report.entries import AttackEntry, AttackSection
from certunlearn.report.policy import Policy

__all__ = ["example_report"]

_DESCRIPTION = "LOSS attack (Yeom et al. 2018): score = -loss"


def example_report(*, leak: float = 0.0, seed: int = 0, policy: Policy | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete synthetic report.

    MIA-L scores are drawn from normal distributions: non-members N(0, 1), forget-set members of the
    retrained reference N(0.05, 1) and of the released model N(0.05 + ``leak``, 1). With ``leak = 0``
    the report passes; a large ``leak`` makes the attack beat the reference (FAIL). Nothing is
    trained: the model digests, accuracies and the σ sweep's accuracies are made up, the ε of the
    sweep is the exact Gaussian ε of each σ.

    Args:
        leak: Extra mean score of the released model's forget set.
        seed: Seed of the synthetic scores and bootstrap.
        policy: Policy to judge with (None: defaults).

    Returns:
        The report dict (valid against the schema).

    Example:
        >>> example_report()["verdict"]["status"], example_report(leak=1.5)["verdict"]["status"]
        ('PASS', 'FAIL')
    """
    rng = np.random.default_rng(seed)
    n = 400
    held_out = rng.normal(0.0, 1.0, n)
    members_released = rng.normal(0.05 + leak, 1.0, n)
    members_retrained = rng.normal(0.05, 1.0, n)
    sensitivity, delta = 0.0094, 1e-5

    def attack(scores_in: np.ndarray, scores_out: np.ndarray) -> AttackEntry:
        metrics = attack_metrics(scores_in, scores_out, n_bootstrap=200, rng=rng)
        bound = epsilon_lower_bound(scores_in, scores_out, delta=delta, alpha=0.05)
        return metrics.report_entry(name="loss", description=_DESCRIPTION, epsilon=bound,
                                    scores_in=scores_in, scores_out=scores_out)

    released = attack(members_released, held_out)
    retrained = attack(members_retrained, held_out)
    mia_l = AttackSection(attacks=(released.with_reference(retrained),), n_shadows=0, alpha=0.05, delta=delta,
                          epsilon_lb=released.epsilon_lb, epsilon_cap=released.epsilon_cap,
                          epsilon_correction="one attack")
    sigmas = [0.005, 0.01, 0.02, 0.035, 0.05, 0.1]
    curve = [{"sigma": s, "epsilon": gaussian_epsilon(sigma=s, delta=delta, sensitivity=sensitivity),
              "test_accuracy": round(0.955 - 0.4 * s, 4)} for s in sigmas]
    return build_report(
        request={"request_id": "demo-request-001", "ids": list(range(0, 140, 10)),
                 "subject_id": "subject-7f3a", "ground": "GDPR Art. 17(1)(b): consent withdrawn",
                 "scope": "synthetic example: softmax regression on digits",
                 "received_at": "2025-01-06T09:00:00+00:00", "executed_at": "2025-01-06T09:05:00+00:00",
                 "reported_at": "2025-01-06T09:10:00+00:00"},
        lineage={"original_params": np.linspace(0.0, 1.0, 650), "released_params": np.linspace(0.0, 1.01, 650),
                 "data_manifest": "0" * 64, "config": {"epochs": 2, "batch_size": 512, "lr": 0.5},
                 "seeds": {"split": seed}, "device": "cpu", "model": "logreg",
                 "dataset": "digits (synthetic example)", "retrain_reference": True,
                 "versions": {"torch": "2.x", "opacus": "1.x"}},
        certificate={"method": "hfocu", "status": "certified", "certified": True, "sensitivity": sensitivity,
                     "epsilon": 1.0, "delta": delta, "sigma": 0.035, "calibration": "analytic",
                     "noise_only_sigma": 0.38, "cumulative_deletions": 14, "request_ids": list(range(14)),
                     "assumptions": ["loss convex and beta-smooth (softmax regression, rows clipped to norm 1)",
                                     "step size <= 2/beta", "no gradient clipping"],
                     "noise_source": "secure"},
        utility={"released": {"retain": 0.968, "test": 0.941, "forget": 0.93},
                 "retrained": {"retain": 0.969, "test": 0.943, "forget": 0.93},
                 "original": {"retain": 0.969, "test": 0.943, "forget": 1.0},
                 "privacy_utility_curve": curve},
        mia_l=mia_l,
        policy=policy,
    )

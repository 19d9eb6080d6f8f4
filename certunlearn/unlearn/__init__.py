"""Unlearning methods behind one interface, plus the per-sample statistics store.

Registered methods: ``hfocu`` (statistics recorded during training), ``curenewton`` and the Newton
family (``newton``, ``damped-newton``, ``pinv-newton``, ``abs-newton``, ``influence``) for models that
recorded nothing, and the baselines ``finetune``, ``gradient-ascent``, ``retrain`` and
``coupled-retrain``. Every method is an :class:`Unlearner`: ``cls(model, **options).fit(X, y)``, then
``forget(ids, epsilon=, delta=)``, ``bound(ids)`` and ``state_dict()`` / ``load_state_dict(state)``;
callers resolve a method by name with :func:`get_unlearner`.

Example:
    >>> from certunlearn.unlearn import UNLEARNERS
    >>> sorted(UNLEARNERS)[:4]
    ['abs-newton', 'coupled-retrain', 'curenewton', 'damped-newton']
"""

from certunlearn.unlearn.base import (
    UNLEARNERS,
    Unlearner,
    UnlearnResult,
    get_unlearner,
    register_unlearner,
)
from certunlearn.unlearn.baselines import (
    CoupledRetrainOracle,
    ExactRetrain,
    FineTune,
    GradientAscent,
)
from certunlearn.unlearn.curenewton import CureNewton
from certunlearn.unlearn.hfocu import HFOCU
from certunlearn.unlearn.newton import (
    AbsEigNewton,
    DampedNewton,
    InfluenceJackknife,
    NewtonStep,
    PinvNewton,
)
from certunlearn.unlearn.posthoc import PostHocUnlearner
from certunlearn.unlearn.store import StatisticsStore

__all__ = [
    "HFOCU",
    "UNLEARNERS",
    "AbsEigNewton",
    "CoupledRetrainOracle",
    "CureNewton",
    "DampedNewton",
    "ExactRetrain",
    "FineTune",
    "GradientAscent",
    "InfluenceJackknife",
    "NewtonStep",
    "PinvNewton",
    "PostHocUnlearner",
    "StatisticsStore",
    "UnlearnResult",
    "Unlearner",
    "get_unlearner",
    "register_unlearner",
]

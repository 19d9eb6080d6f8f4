"""HF-OCU: Hessian-Free Online Certified Unlearning (Qiao, Zhang, Tang, Wei, ICLR 2025).

``fit`` trains by deterministic mini-batch SGD while :class:`HFOCURecorder` keeps one approximator a_u
per tracked sample; ``forget(U)`` computes w̄ = w_T + Σ_{u∈U} a_u (a vector addition, exact additivity:
Theorem 1 of the paper) and releases a certified noisy model by one of two certificates:

* ``certificate="refine"`` (the default for softmax regression with weight decay): Newton steps on the
  remaining-data objective from a start computed at fit time (one Newton step from the training ERM;
  or w̄ itself, ``RefineOptions(start="update")``) until the measured distance to the exact retrain
  argmin F_R is within the public budget Δ_b; the release is that candidate + N(0, σ(Δ_b)²I)
  (``reference == "erm"``; docs/theory.md §10);
* ``certificate="worst-case"``: w̄ + N(0, σ²I) with σ calibrated to an a priori bound
  Δ ≥ ‖w̄ − w^{-U}_T‖ against the coupled full-batch-normalised retrain, rounding included, no data
  pass (``reference == "coupled-sgd"``; docs/theory.md §3, §9).

Online use: successive requests accumulate into the cumulative deleted set; every release draws fresh
noise calibrated to the cumulative set, and noise is never stacked on an earlier release.

Example:
    >>> from certunlearn.models import LogisticRegression
    >>> from certunlearn.train import SGDConfig
    >>> X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> X = X / X.norm(dim=1, keepdim=True).clamp(min=1)          # rows clipped to norm 1
    >>> y = (X[:, 0] > 0).long()
    >>> cfg = SGDConfig(epochs=3, batch_size=8, lr=0.5, weight_decay=0.05, seed=0)
    >>> hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
    >>> res = hf.forget([3, 17], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(0))
    >>> res.certified, res.reference, res.measured_bound <= res.sensitivity == res.sensitivity_budget
    (True, 'erm', True)
    >>> hf2 = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0, certificate="worst-case").fit(X, y)
    >>> hf2.forget([3, 17], epsilon=1.0, delta=1e-5).reference
    'coupled-sgd'
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from certunlearn.autodiff.functional import FunctionalModel
from certunlearn.certify.assumptions import Assumptions, Bound, softmax_regression_assumptions
from certunlearn.certify.hfocu_bounds import coupled_sgd_bound, second_order_sgd_bound
from certunlearn.certify.ledger import Ledger
from certunlearn.certify.refine import DEFAULT_RISK_TOLERANCE
from certunlearn.certify.rounding import HFOCURoundingPlan, sgd_trajectory_error
from certunlearn.errors import (
    AssumptionError,
    ConfigError,
    PrivacyLeakWarning,
    SampleIdError,
)
from certunlearn.models import LogisticRegression
from certunlearn.progress import ProgressFn
from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, ScheduleIndex
from certunlearn.train.sgd import check_sample_ids, coupled_retrain, prepare_data, run_schedule
from certunlearn.unlearn import hfocu_state
from certunlearn.unlearn.base import (
    Unlearner,
    UnlearnResult,
    feature_bound_problem,
    register_unlearner,
)
from certunlearn.unlearn.certificate import (
    RefineCertifier,
    precision_of,
    refine_extras,
    resolve_certificate,
)
from certunlearn.unlearn.noise import gaussian_noise_like, noise_source
from certunlearn.unlearn.recorder import HFOCURecorder
from certunlearn.unlearn.refine import ErmObjective, RefineOptions
from certunlearn.unlearn.release import make_release
from certunlearn.unlearn.store import STORAGE_DTYPES, StatisticsStore
from certunlearn.validation import check_choice, check_positive

__all__ = ["HFOCU"]

_DTYPE_NAMES = {dtype: name for name, (dtype, _) in STORAGE_DTYPES.items()}


class HFOCU(Unlearner):
    """Hessian-free online certified unlearning for a model trained by mini-batch SGD.

    Args:
        model: Initial model (its parameters are w_0); never modified.
        config: The SGD configuration (its seed fixes the batch schedule).
        track_ids: Sample ids that may be deleted later (default: all). Only these pay the
            statistics' memory and compute.
        assumptions: Declared constants for the certificate. If omitted and the model is a
            :class:`~certunlearn.models.LogisticRegression` with cross-entropy, they are derived
            from ``feature_norm_bound``, the weight decay and the projection radius.
        feature_norm_bound: Public bound on every row's norm (the clipping norm of the data). If
            omitted for softmax regression, it is measured on the data, a :class:`PrivacyLeakWarning`
            is issued, and releases are uncertified.
        calibration: ``analytic`` (exact) or ``classical`` σ calibration.
        noise_sensitivity: Sensitivity used for noise when no certified bound applies
            (user-chosen, labelled uncertified). Default: no noise in that case.
        storage_dtype: ``float32`` / ``float64`` / ``bfloat16`` (default: the model's dtype).
        store_path: If given, memory-map the statistics at this file instead of holding them in RAM.
        block_rows: Rows of the store processed at once during recording.
        vmap_chunk: ``chunk_size`` of the vmapped HVPs and per-sample gradients.
        ledger: Optional :class:`~certunlearn.certify.ledger.Ledger`; each ``forget`` is checked
            against its policy before anything is released and recorded after (with SHA-256 digests
            of the model before and after, which costs O(d) hashing per request).
        certificate: ``refine``, ``worst-case``, or None: ``refine`` wherever it applies (softmax
            regression with weight decay > 0, or declared constants with an error model), else
            ``worst-case``.
        sensitivity_budget: Public budget Δ_b of refine releases (a request may override it); None:
            the default rule (:func:`~certunlearn.certify.refine.default_sensitivity_budget`), which
            needs a public ``feature_norm_bound``.
        risk_tolerance: τ of the default budget rule.
        refine: :class:`~certunlearn.unlearn.refine.RefineOptions` (steps, preconditioner, start).
    """

    name = "hfocu"
    noiseless_releases = False  # every release carries noise calibrated to (ε, δ)

    def __init__(
        self,
        model: nn.Module,
        config: SGDConfig,
        *,
        track_ids: Iterable[int] | None = None,
        assumptions: Assumptions | None = None,
        feature_norm_bound: float | None = None,
        calibration: str = "analytic",
        noise_sensitivity: float | None = None,
        storage_dtype: str | None = None,
        store_path: str | Path | None = None,
        block_rows: int | None = None,
        vmap_chunk: int | None = None,
        ledger: Ledger | None = None,
        certificate: str | None = None,
        sensitivity_budget: float | None = None,
        risk_tolerance: float = DEFAULT_RISK_TOLERANCE,
        refine: RefineOptions | None = None,
    ) -> None:
        if not isinstance(config, SGDConfig):
            raise ConfigError(f"config must be an SGDConfig, got {type(config).__name__}")
        if certificate is not None:
            check_choice("certificate", certificate, ("refine", "worst-case"))
        self.certificate = certificate
        self.sensitivity_budget = (
            None if sensitivity_budget is None else check_positive("sensitivity_budget", sensitivity_budget))
        self.risk_tolerance = check_positive("risk_tolerance", risk_tolerance)
        if refine is not None and not isinstance(refine, RefineOptions):
            raise ConfigError(f"refine must be RefineOptions, got {type(refine).__name__}")
        self.refine = refine or RefineOptions()
        self.model = model
        self.config = config
        self.track_ids = None if track_ids is None else list(track_ids)
        self.assumptions = assumptions
        self.feature_norm_bound = (
            None if feature_norm_bound is None else check_positive("feature_norm_bound", feature_norm_bound)
        )
        self.calibration = check_choice("calibration", calibration, ("analytic", "classical"))
        self.noise_sensitivity = (
            None if noise_sensitivity is None else check_positive("noise_sensitivity", noise_sensitivity)
        )
        self.storage_dtype = storage_dtype
        self.store_path = store_path
        self.block_rows = block_rows
        self.vmap_chunk = vmap_chunk
        self.ledger = ledger

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Tensor, y: Tensor, *, progress: ProgressFn | None = None) -> HFOCU:
        """Train on ``(X, y)`` (ids = row indices) while recording the HF-OCU statistics."""
        fm = FunctionalModel(self.model, loss=self.config.loss)
        X, y = prepare_data(fm, X, y)
        n = X.shape[0]
        tracked = list(range(n)) if self.track_ids is None else check_sample_ids(self.track_ids, n, what="tracked ids")
        if not tracked:
            raise SampleIdError("track_ids is empty: nothing could be forgotten")
        storage = self.storage_dtype or _DTYPE_NAMES.get(fm.dtype, "float32")
        schedule = Schedule.build(n_samples=n, config=self.config)
        store = StatisticsStore(tracked, fm.dim, storage_dtype=storage, device=fm.device, path=self.store_path)
        recorder = HFOCURecorder(
            fm, store, weight_decay=self.config.weight_decay,
            block_rows=self.block_rows, vmap_chunk=self.vmap_chunk,
        )
        started = time.perf_counter()
        theta = run_schedule(
            fm, X, y, schedule, self.config, observers=[recorder], progress=progress, label="train + record"
        )
        self.precompute_seconds_ = time.perf_counter() - started
        if fm.chain is not None:
            fm.chain.clear_workspace()  # the HVP scratch space is not needed after recording
        self._set_fitted(fm, theta, schedule, store, self._resolve_assumptions(fm, X), X=X, y=y)
        return self

    def _set_fitted(
        self,
        fm: FunctionalModel,
        theta: Tensor,
        schedule: Schedule,
        store: StatisticsStore,
        assumptions: tuple[Assumptions | None, tuple[str, ...]],
        deleted: Iterable[int] = (),
        *,
        X: Tensor,
        y: Tensor | None,
        anchor: Tensor | None = None,
        index: ScheduleIndex | None = None,
        progress: tuple[Tensor, np.ndarray] | None = None,
    ) -> None:
        """Set every fitted attribute; ``progress`` = (Σ a_u, counts) of ``deleted`` when known (a saved
        state), else they are summed from the store."""
        self.fm_ = fm
        self.theta_ = theta
        self.schedule_ = schedule
        self.index_ = ScheduleIndex(schedule) if index is None else index
        self.store_ = store
        self.X_, self.y_ = X, y
        self.n_samples_ = schedule.n_samples
        self.assumptions_, self.assumption_problems_ = assumptions
        deleted = list(deleted)
        self.deleted_: tuple[int, ...] = tuple(deleted)
        self.sum_a_ = torch.zeros_like(theta)
        self.counts_ = np.zeros(len(schedule), dtype=np.int64)
        if progress is not None:
            self.sum_a_, self.counts_ = progress
        elif deleted:
            self.sum_a_ = store.sum_rows(store.rows_of(deleted), dtype=fm.dtype, device=fm.device)
            self.counts_ = self.index_.deletion_counts(deleted)
        self.prefetched_noise_: Tensor | None = None
        self.released_noiseless_: Tensor | None = None
        self.precision_ = precision_of(fm.dtype, fm.device, storage=store.storage_dtype)
        a = self.assumptions_
        self.trajectory_error_ = None
        self.rounding_plan_: HFOCURoundingPlan | None = None
        if a is not None and a.convex and a.error_model is not None:  # the worst-case bounds' rounding (§9)
            projection = self.config.projection_radius is not None
            self.trajectory_error_ = sgd_trajectory_error(
                lrs=self.index_.lrs, batch_sizes=self.index_.batch_sizes, precision=self.precision_,
                model=a.error_model, gradient_bound=a.gradient_bound, dim=fm.dim, projection=projection)
            self.rounding_plan_ = HFOCURoundingPlan(
                lrs=self.index_.lrs, batch_sizes=self.index_.batch_sizes, precision=self.precision_,
                model=a.error_model, gradient_bound=a.gradient_bound, smoothness=a.smoothness,
                strong_convexity=a.strong_convexity, dim=fm.dim, hessian_lipschitz=a.hessian_lipschitz,
                projection=projection, trajectory=self.trajectory_error_)
        self._set_certificate(fm, theta, X, y, anchor)

    def _set_certificate(self, fm: FunctionalModel, theta: Tensor, X: Tensor, y: Tensor | None,
                         anchor: Tensor | None) -> None:
        """Resolve the certificate; for ``refine``, keep the data and solve (or reuse) the ERM anchor."""
        if y is None:
            objective, problem = None, "the training labels were not given (HFOCU.load(..., y=...))"
        else:
            objective, problem = ErmObjective.build(fm.module, X, y, weight_decay=self.config.weight_decay,
                                                    loss=self.config.loss, assumptions=self.assumptions)
        self.certificate_ = resolve_certificate(self.certificate, problem)
        self.certifier_: RefineCertifier | None = None
        if self.certificate_ != "refine" or objective is None:
            return
        started = time.perf_counter()
        if anchor is None:  # argmin F_S over all rows, from the trained model (a start for every request)
            solver = RefineCertifier(objective, reference=theta, dtype=torch.float64,
                                     options=replace(self.refine, fallback=False))
            anchor = solver.refiner.solve(theta)
        anchor = anchor.to(device=objective.X.device, dtype=torch.float64)
        self.anchor_ = anchor
        self.anchor_gradient_ = objective.fm.objective_grad(
            anchor, objective.X, objective.y, normalizer=objective.n, weight_decay=objective.weight_decay).detach()
        self.certifier_ = RefineCertifier(objective, reference=anchor, dtype=fm.dtype, options=self.refine,
                                          sensitivity_budget=self.sensitivity_budget,
                                          risk_tolerance=self.risk_tolerance, calibration=self.calibration)
        _ = self.certifier_.refiner.preconditioner_kind  # factorise now, not in the first request
        self.anchor_seconds_ = time.perf_counter() - started

    def _resolve_assumptions(self, fm: FunctionalModel, X: Tensor) -> tuple[Assumptions | None, tuple[str, ...]]:
        if self.assumptions is not None:
            return self.assumptions, ()
        if not (isinstance(self.model, LogisticRegression) and self.config.loss == "cross_entropy"):
            return None, (
                "no assumptions were declared for this model; certificates are derived automatically "
                "only for LogisticRegression with cross-entropy (pass assumptions=Assumptions(...))",
            )
        measured = float(X.flatten(1).norm(dim=1).max())
        bound, source = self.feature_norm_bound, "derived"
        problems: list[str] = []
        if bound is None:
            warnings.warn(
                "feature_norm_bound not given: measuring max ||x|| on the private training data; "
                "releases will be uncertified (clip rows to a public norm instead)",
                PrivacyLeakWarning,
                stacklevel=3,
            )
            bound, source = measured, "estimated"
        elif (problem := feature_bound_problem(X, bound)) is not None:
            problems.append(problem)
        try:
            derived = softmax_regression_assumptions(
                feature_norm_bound=bound,
                weight_decay=self.config.weight_decay,
                projection_radius=self.config.projection_radius,
                init_norm=float(fm.theta0.norm()),
                source=source,
                features=int(X.flatten(1).shape[1]),
                classes=int(self.model.linear.out_features),
            )
        except AssumptionError as exc:
            return None, (str(exc),)
        return derived, tuple(problems)

    # ------------------------------------------------------------------ state
    def _check_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise ConfigError("HFOCU is not fitted: call fit(X, y) or HFOCU.load(...) first")

    @property
    def params(self) -> dict[str, Tensor]:
        """Trained parameters w_T (copies), keyed like ``model.state_dict()``."""
        self._check_fitted()
        return self.fm_.state_dict(self.theta_)

    @property
    def schedule(self) -> Schedule:
        """The recorded batch schedule."""
        self._check_fitted()
        return self.schedule_

    @property
    def tracked_ids(self) -> np.ndarray:
        """Sorted ids whose statistics are recorded (the only ids ``forget`` accepts)."""
        self._check_fitted()
        return self.store_.ids.copy()

    @property
    def dim(self) -> int:
        """Number of parameters d of the model."""
        self._check_fitted()
        return self.fm_.dim

    def outputs(self, theta: Tensor | Mapping[str, Tensor], X: Tensor) -> Tensor:
        """The model's outputs (logits) at parameters ``theta`` (flat vector or state dict), without gradients.

        Args:
            theta: Flat parameters ``[d]`` in the model's layout, or a state dict such as
                ``result.params_released``.
            X: ``[n, ...]`` inputs (moved to the model's device and dtype).

        Returns:
            ``[n, classes]`` outputs.
        """
        self._check_fitted()
        fm = self.fm_
        flat = fm.layout.flatten(theta) if isinstance(theta, Mapping) else theta
        with torch.no_grad():
            return fm.outputs(flat.to(device=fm.device, dtype=fm.dtype), X.to(device=fm.device, dtype=fm.dtype))

    def reference(self, X: Tensor, y: Tensor, deleted: Iterable[int]) -> Tensor:
        """The retrained model the certificate speaks about, as a flat vector in the model's dtype.

        ``refine``: the minimiser of the regularised risk on the remaining rows, by Newton steps in
        float64 from the fit-time anchor (to the measured bound's floor); ``worst-case``: the coupled
        retrain of the recorded schedule without ``deleted``.

        Args:
            X: The training features given to ``fit``; ``y`` their labels.
            deleted: Ids of the rows to leave out.

        Returns:
            ``[d]`` parameters on the model's device.
        """
        self._check_fitted()
        deleted = [int(i) for i in deleted]
        if self.certificate_ == "refine" and self.certifier_ is not None:
            theta = self.certifier_.refiner.solve(self.anchor_, self.certifier_.keep_mask(deleted))
            return theta.to(device=self.fm_.device, dtype=self.fm_.dtype)
        retrained = coupled_retrain(self.fm_.module, X, y, self.schedule, self.config, exclude=deleted)
        return self.fm_.layout.flatten(retrained).to(self.fm_.device)

    @property
    def statistics_nbytes(self) -> int:
        """Bytes held by the per-sample statistics."""
        self._check_fitted()
        return self.store_.nbytes

    def bound(self, ids: Iterable[int]) -> Bound | None:
        """The worst-case Δ bound for forgetting ``ids`` (on top of those already forgotten), rounding
        included; None if no assumptions. (The refine certificate is measured at ``forget`` time.)"""
        request = self.check_ids(ids, allow_empty=True)
        if self.assumptions_ is None:
            return None
        counts = self.counts_ + self.index_.deletion_counts(request)
        return self._bound_from_counts(counts)

    def _bound_from_counts(self, counts: np.ndarray) -> Bound | None:
        if self.assumptions_ is None:
            return None
        # the floating-point terms: once for both bounds, from the fit's plan (dot products with the counts)
        terms = None if self.rounding_plan_ is None else self.rounding_plan_.terms(counts)
        common = dict(
            lrs=self.index_.lrs,
            batch_sizes=self.index_.batch_sizes,
            deletion_counts=counts,
            assumptions=self.assumptions_,
            clip_norm=self.config.clip_norm,
            precision=self.precision_,
            trajectory_error=self.trajectory_error_,
            rounding_terms=terms,
        )
        bound = coupled_sgd_bound(**common, projection=self.config.projection_radius is not None)
        if bound.certified and self.assumptions_.hessian_lipschitz is not None:
            second = second_order_sgd_bound(**common, projection_radius=self.config.projection_radius)
            if second.certified and second.value <= bound.value:
                bound = second
        if self.assumption_problems_ and bound.status != "uncertified":
            bound = Bound(bound.name, float("inf"), "uncertified", bound.assumptions,
                          bound.violations + self.assumption_problems_, None)
        return bound

    # ------------------------------------------------------------------ forgetting
    def prefetch_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw the next release's standard normal noise now, while no request is waiting.

        The next (non-dry-run) ``forget`` with σ > 0 adds σ times this draw instead of drawing, so
        its latency is a few vector additions; the draw is then discarded (never reused). Dry runs
        draw their own noise and leave the prefetched draw for that release. Drawing ahead changes
        nothing else: the noise is independent of the request, and with the same generator the
        release is identical to drawing at request time.

        Example:
            >>> from certunlearn.models import LogisticRegression
            >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
            >>> cfg = SGDConfig(epochs=2, batch_size=5, lr=0.5, weight_decay=0.1)
            >>> a = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
            >>> b = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
            >>> a.prefetch_noise(torch.Generator().manual_seed(7))
            >>> ra = a.forget([1, 2], epsilon=1.0, delta=1e-5)
            >>> rb = b.forget([1, 2], epsilon=1.0, delta=1e-5, generator=torch.Generator().manual_seed(7))
            >>> all(torch.equal(ra.params_released[k], rb.params_released[k]) for k in ra.params_released)
            True
        """
        self._check_fitted()
        self.prefetched_noise_ = gaussian_noise_like(self.theta_, 1.0, generator)
        self.prefetched_noise_source_ = noise_source(generator, 1.0)

    def forget(
        self,
        ids: Iterable[int],
        *,
        epsilon: float | None = None,
        delta: float | None = None,
        generator: torch.Generator | None = None,
        request_id: str | None = None,
        dry_run: bool = False,
        sensitivity_budget: float | None = None,
    ) -> UnlearnResult:
        """Forget ``ids`` and release a noisy model certified for the cumulative deleted set.

        Args:
            ids: Sample ids to forget now (distinct, tracked, not forgotten before).
            epsilon: ε of this release (> 0): required, HF-OCU never releases without noise.
            delta: δ of this release, in (0, 1): required.
            generator: None (default) for secure noise from the OS CSPRNG; a generator on the
                model's device for reproducible noise, labelled not private.
            request_id: Identifier recorded in the ledger (default: ``request-<k>``).
            dry_run: Compute the release but change nothing (no state update, no ledger entry):
                for what-if questions such as the empirical deletion capacity.
            sensitivity_budget: Public budget Δ_b of this release (refine certificate); overrides the
                unlearner's and the default rule.

        Returns:
            :class:`UnlearnResult`. On any error nothing changes.

        Raises:
            RefinementRefused: (refine) the measured bound stayed above the budget; nothing released.
        """
        request, epsilon, delta = self.check_request(ids, epsilon=epsilon, delta=delta)
        # a prefetched draw serves one release: a dry run draws its own (else the two outputs would
        # share a noise vector, and their difference would reveal the noiseless models' difference)
        return self._forget(request, epsilon, delta, generator=generator, request_id=request_id, dry_run=dry_run,
                            sensitivity_budget=sensitivity_budget,
                            standard_noise=None if dry_run else self.prefetched_noise_,
                            standard_noise_source=getattr(self, "prefetched_noise_source_", "secure"))

    def dry_release(self, ids: Iterable[int], *, epsilon: float, delta: float, standard_noise: Tensor,
                    standard_noise_source: str = "secure", sensitivity_budget: float | None = None) -> UnlearnResult:
        """The release ``forget(ids, dry_run=True)`` would make, with noise ``σ · standard_noise``.

        For a caller that records the release somewhere else first and applies it after (the deletion
        service: :meth:`replay` after its ledger commit), and that drew the N(0, I) vector ahead of
        the request (:func:`certunlearn.unlearn.noise.secure_standard_normal`, or a seeded
        generator labelled ``seeded``). The caller must use a draw for one release only.

        Args:
            ids: As for :meth:`forget`.
            epsilon: ε of the release.
            delta: δ of the release.
            standard_noise: A N(0, I) draw of the parameters' shape, dtype and device.
            standard_noise_source: ``secure`` or ``seeded``: where the draw came from.
            sensitivity_budget: As for :meth:`forget`.

        Returns:
            The :class:`UnlearnResult`; nothing changes.
        """
        request, epsilon, delta = self.check_request(ids, epsilon=epsilon, delta=delta)
        if standard_noise_source not in ("secure", "seeded"):
            raise ConfigError(f"standard_noise_source must be secure or seeded, got {standard_noise_source!r}")
        if standard_noise.shape != self.theta_.shape or standard_noise.dtype != self.theta_.dtype:
            raise ConfigError(f"standard_noise must be {tuple(self.theta_.shape)} {self.theta_.dtype}, got "
                              f"{tuple(standard_noise.shape)} {standard_noise.dtype}")
        return self._forget(request, epsilon, delta, generator=None, request_id=None, dry_run=True,
                            sensitivity_budget=sensitivity_budget, standard_noise=standard_noise,
                            standard_noise_source=standard_noise_source)

    def _forget(self, request: list[int], epsilon: float, delta: float, *, generator: torch.Generator | None,
                request_id: str | None, dry_run: bool, sensitivity_budget: float | None,
                standard_noise: Tensor | None, standard_noise_source: str) -> UnlearnResult:
        self.store_.rows_of(request)  # raises for untracked ids
        started = time.perf_counter()
        sum_a, counts, cumulative = self._advanced(request)
        noiseless = self.theta_ + sum_a
        common: dict[str, Any] = dict(
            method=self.name, request=request, previous=self.deleted_, epsilon=epsilon, delta=delta,
            state=self._state, noise_sensitivity=self.noise_sensitivity, calibration=self.calibration,
            generator=generator, ledger=self.ledger, dry_run=dry_run, request_id=request_id, started=started,
            standard_noise=standard_noise, standard_noise_source=standard_noise_source,
        )
        previous = self.released_noiseless_ if self.released_noiseless_ is not None else self.theta_ + self.sum_a_
        if self.certificate_ == "refine":
            theta, bound, budget, outcome = self._refine(noiseless, sorted(cumulative), epsilon, delta,
                                                         sensitivity_budget)
            extras = refine_extras(outcome, self.certifier_.refiner.preconditioner_kind)  # type: ignore[union-attr]
            extras["hfocu_update_distance"] = float((theta.to(noiseless.dtype) - noiseless).norm())
            result = make_release(
                **common, noiseless=theta, bound=bound, problems=(), extras=extras,
                model_before=None if self.ledger is None else previous, reference="erm",
                certificate="refine", sensitivity_budget=budget,
                measured_bound=None if outcome is None else outcome.bound.value)
        else:
            theta = noiseless
            result = make_release(
                **common, noiseless=noiseless, bound=self._bound_from_counts(counts),
                problems=self.assumption_problems_, model_before=None if self.ledger is None else previous,
                reference="coupled-sgd", certificate="worst-case")
        if dry_run:
            return result
        self.prefetched_noise_ = None  # a prefetched draw serves one release only
        self.deleted_, self.sum_a_, self.counts_ = cumulative, sum_a, counts
        self.released_noiseless_ = theta
        return result

    def _advanced(self, request: list[int]) -> tuple[Tensor, np.ndarray, tuple[int, ...]]:
        """(Σ a_u, per-step counts, deleted ids) after ``request``: the one state update of ``forget``
        and :meth:`replay` (the same additions in the same order, so both give the same bits)."""
        rows = self.store_.rows_of(request)  # raises for untracked ids
        fm = self.fm_
        sum_a = self.sum_a_ + self.store_.sum_rows(rows, dtype=fm.dtype, device=fm.device)
        return sum_a, self.counts_ + self.index_.deletion_counts(request), self.deleted_ + tuple(request)

    def replay(self, ids: Iterable[int]) -> None:
        """Apply the state update of a ``forget(ids)`` released earlier, without releasing anything.

        Σ a_u, the per-step deletion counts and the deleted ids (in request order) advance exactly as
        ``forget`` advances them, bit for bit: replaying the requests of a saved state in their order
        rebuilds the deletion state of the process that served them (what
        :class:`certunlearn.service.DeletionService` does on open). No noise is drawn and the ledger is
        not touched; the last noiseless release is forgotten (``released_noiseless_`` becomes None).

        Args:
            ids: The request's ids (distinct, tracked, not forgotten before).

        Raises:
            SampleIdError: An id is unknown, untracked, repeated or already forgotten (nothing changes).

        Example:
            >>> from certunlearn.models import LogisticRegression
            >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
            >>> cfg = SGDConfig(epochs=2, batch_size=5, lr=0.5, weight_decay=0.1)
            >>> a = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
            >>> b = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
            >>> _ = a.forget([4, 2], epsilon=1.0, delta=1e-5); b.replay([4, 2])
            >>> b.deleted_ids, torch.equal(a.sum_a_, b.sum_a_)
            ((4, 2), True)
        """
        request = self.check_ids(ids)
        sum_a, counts, cumulative = self._advanced(request)
        self.deleted_, self.sum_a_, self.counts_ = cumulative, sum_a, counts
        self.released_noiseless_ = None

    def _refine(self, update: Tensor, cumulative: list[int], epsilon: float, delta: float,
                budget: float | None) -> tuple[Tensor, Bound, float, Any]:
        """The refine certificate for the cumulative deleted set (docs/theory.md §10)."""
        certifier = self.certifier_
        assert certifier is not None  # set with certificate_ == "refine"
        if self.refine.start == "anchor":
            index = torch.as_tensor(cumulative, dtype=torch.long, device=self.anchor_.device)
            start = certifier.refiner.newton_start(self.anchor_, self.anchor_gradient_, index,
                                                   self.schedule_.n_samples - len(cumulative))
        else:
            start = update
        public = None if self.assumption_problems_ else self.assumptions_
        return certifier.certify(start, cumulative, epsilon=epsilon, delta=delta, assumptions=public,
                                 request_budget=budget, fallback_start=self.anchor_,
                                 unit_roundoff=self.precision_.u, not_public=self.assumption_problems_)

    def _state(self, theta: Tensor) -> dict[str, Tensor]:
        # views, not FunctionalModel.state_dict's copies: forget is the latency-critical path
        state = dict(self.fm_.buffers)
        state.update(self.fm_.layout.unflatten(theta))
        return state

    # ------------------------------------------------------------------ state and persistence
    def _options(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(), "feature_norm_bound": self.feature_norm_bound,
            "calibration": self.calibration, "noise_sensitivity": self.noise_sensitivity,
            "certificate": self.certificate, "sensitivity_budget": self.sensitivity_budget,
            "risk_tolerance": self.risk_tolerance, "refine": asdict(self.refine),
        }

    def state_dict(self) -> dict[str, Any]:
        """Initial and trained parameters, schedule, statistics, training data, the refine anchor, the
        deletions so far (Σ a_u, counts, last noiseless release) and the ledger
        (:mod:`certunlearn.unlearn.hfocu_state`). A prefetched noise draw is not part of it.

        Example:
            >>> import io
            >>> from certunlearn.models import LogisticRegression
            >>> X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            >>> X = X / X.norm(dim=1, keepdim=True); y = (X[:, 0] > 0).long()
            >>> cfg = SGDConfig(epochs=2, batch_size=5, lr=0.5, weight_decay=0.1)
            >>> hf = HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).fit(X, y)
            >>> _ = hf.forget([4], epsilon=1.0, delta=1e-5)
            >>> buffer = io.BytesIO(); torch.save(hf.state_dict(), buffer); _ = buffer.seek(0)
            >>> state = torch.load(buffer, weights_only=True)
            >>> HFOCU(LogisticRegression(3, 2), cfg, feature_norm_bound=1.0).load_state_dict(state).deleted_ids
            (4,)
        """
        self._check_fitted()
        return hfocu_state.state_dict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> HFOCU:
        """Restore :meth:`state_dict`'s output (see :meth:`Unlearner.load_state_dict`): the saved
        initial parameters become this unlearner's w_0; nothing is trained or recorded again."""
        return hfocu_state.restore(self, state)

    def save(self, directory: str | Path) -> Path:
        """Write :meth:`state_dict` (all but the training data) into ``directory``: ``params.pt``,
        ``initial_params.pt``, ``schedule.json``, ``statistics.bin`` + ``statistics.json``,
        ``erm_anchor.pt`` (refine), ``deletion_state.pt`` and ``hfocu.json`` (with the ledger)."""
        self._check_fitted()
        return hfocu_state.save(self, directory)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        model: nn.Module,
        X: Tensor,
        *,
        y: Tensor | None = None,
        assumptions: Assumptions | None = None,
        mmap_mode: bool = True,
    ) -> HFOCU:
        """Reopen a saved HF-OCU state for ``model``'s architecture (ledger included).

        Args:
            directory: Written by :meth:`save` (this version's, or the previous schema's, which
                had no ledger).
            model: A module of the same architecture (its weights are replaced by the saved ones).
            X: The training features (to re-check the declared feature-norm bound, and for refinement).
            y: The training labels: needed when the state certifies by refinement.
            assumptions: Declared constants, if the original run declared them.
            mmap_mode: Keep the statistics memory-mapped (default) or read them into memory.
        """
        return hfocu_state.load(cls, directory, model, X, y=y, assumptions=assumptions, mmap_mode=mmap_mode)


register_unlearner(HFOCU.name, HFOCU)

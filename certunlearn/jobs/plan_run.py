"""Running audit plans end to end: unlearn (or load), certify, attack, report.

:func:`run_plan` executes an :class:`~certunlearn.jobs.plan.AuditPlan` and writes ``report.json``,
``report.html`` and ``report.md``. For ``hfocu`` plans the audited release is compared with the
reference of its certificate (the exact retrain argmin F_R for ``refine``, the plan's default; the
coupled retrain for ``worst-case``):

* **MIA-L** on the released model: forget set (members of the original training) against held-out
  test rows, with LOSS and LiRA on shadow models of the same architecture, and the same attacks on
  the retrained model as the reference;
* **MIA-U** original vs released: the L2 distance between the two models' posteriors as a threshold
  attack (Chen et al.'s ``l2_distance`` feature), forget rows against never-trained test rows, and the
  same with the retrained model in place of the release as the reference;
* a privacy–utility curve: released test accuracy against ε over a σ sweep.

Example:
    >>> import tempfile
    >>> from certunlearn.jobs.plan import parse_plan
    >>> plan = parse_plan({"schema_version": 1, "name": "tiny", "claim": "c", "kind": "hfocu",
    ...     "data": {"dataset": "wine"}, "training": {"epochs": 1, "batch_size": 64},
    ...     "request": {"forget_fraction": 0.05}, "audit": {"attacks": ["loss"], "mia_u": False,
    ...     "sweep_epsilons": [1.0]}}, base=".")
    >>> out = run_plan(plan, tempfile.mkdtemp())
    >>> out["report"]["verdict"]["status"] in {"PASS", "INVESTIGATE", "FAIL"}
    True
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from certunlearn.errors import ConfigError, InputError
from certunlearn.jobs.outputs import check_output_dir, write_text_atomic
from certunlearn.jobs.plan import AuditPlan
from certunlearn.progress import ProgressFn
from certunlearn.report.entries import AttackEntry, AttackSection

__all__ = ["run_plan", "write_report"]


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(dim=1) == y).double().mean()) if y.numel() else float("nan")


def _loss(logits: Tensor, y: Tensor) -> float:
    return float(torch.nn.functional.cross_entropy(logits, y.long())) if y.numel() else float("nan")


def _mia_u_l2(original: Tensor, other: Tensor, n_forget: int, alpha: float, delta: float) -> AttackEntry:
    """Posterior-distance threshold attack: rows [0, n_forget) are deleted, the rest never trained."""
    from certunlearn.audit.epsilon import epsilon_lower_bound
    from certunlearn.audit.metrics import attack_metrics

    distance = (original.softmax(dim=1) - other.softmax(dim=1)).norm(dim=1).double().cpu().numpy()
    scores_in, scores_out = distance[:n_forget], distance[n_forget:]
    metrics = attack_metrics(scores_in, scores_out, alpha=alpha, n_bootstrap=200, rng=np.random.default_rng(0))
    bound = epsilon_lower_bound(scores_in, scores_out, delta=delta, alpha=alpha)
    return metrics.report_entry(name="l2_distance-threshold", epsilon=bound, scores_in=scores_in,
                                scores_out=scores_out)


def _validate_request(request: Any, training: Any) -> float:
    """Checks done before training, so a bad plan costs nothing; returns the forget fraction."""
    from certunlearn.validation import check_choice, check_positive

    fraction = float(request.forget_fraction)
    if not 0.0 < fraction < 0.5:
        raise ConfigError(f"forget_fraction must be in (0, 0.5), got {fraction!r}")
    check_choice("certificate", request.certificate, ("refine", "worst-case"))
    if request.sensitivity_budget is not None:
        check_positive("sensitivity_budget", request.sensitivity_budget)
    track = float(training.track_fraction)
    if not fraction <= track <= 1.0:
        raise ConfigError(f"track_fraction must be in [forget_fraction, 1], got {track!r}")
    return fraction


def _request_ids(plan: AuditPlan, n_train: int, fraction: float) -> tuple[list[int], list[int] | None]:
    """The plan's forget set (a seeded share of the training ids) and the tracked ids (None: all)."""
    rng = np.random.default_rng(int(plan.data.seed))
    m = max(1, int(round(fraction * n_train)))
    forget = sorted(int(i) for i in rng.choice(n_train, size=m, replace=False))
    track = None  # the ids that may ask to be deleted: a seeded share of the training set, the request among them
    if float(plan.training.track_fraction) < 1.0:
        others = np.setdiff1d(np.arange(n_train), forget)
        extra = int(round(float(plan.training.track_fraction) * n_train)) - m
        track = sorted(forget + [int(i) for i in rng.choice(others, size=max(extra, 0), replace=False)])
    return forget, track


def _utility(hf: Any, thetas: dict[str, Tensor], splits: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Any]:
    """Accuracy and loss of every model on every split."""
    outputs = {name: {s: hf.outputs(t, X) for s, (X, _) in splits.items()} for name, t in thetas.items()}
    return {
        name: {**{s: _accuracy(outputs[name][s], splits[s][1]) for s in splits},
               **{f"{s}_loss": _loss(outputs[name][s], splits[s][1]) for s in splits}}
        for name in thetas
    }


def _privacy_utility_curve(plan: AuditPlan, hf: Any, result: Any, noiseless: Tensor,
                           splits: dict[str, tuple[Tensor, Tensor]]) -> list[dict[str, float]]:
    """Released accuracy against ε at this candidate's Δ: fresh (seeded, evaluation-only) noise per ε."""
    from certunlearn.certify.gaussian import gaussian_sigma

    curve = []
    sweep_gen = torch.Generator().manual_seed(int(plan.data.seed) + 1)
    for eps in plan.audit.sweep_epsilons:
        sigma = gaussian_sigma(epsilon=float(eps), delta=plan.request.delta, sensitivity=result.sensitivity) \
            if result.sensitivity else 0.0
        noisy = noiseless + sigma * torch.randn(noiseless.shape, generator=sweep_gen, dtype=noiseless.dtype)
        curve.append({"epsilon": float(eps), "sigma": sigma,
                      "test_accuracy": _accuracy(hf.outputs(noisy, splits["test"][0]), splits["test"][1]),
                      "retain_accuracy": _accuracy(hf.outputs(noisy, splits["retain"][0]), splits["retain"][1])})
    return curve


def _mia_sections(plan: AuditPlan, hf: Any, ds: Any, thetas: dict[str, Tensor],
                  splits: dict[str, tuple[Tensor, Tensor]], progress: ProgressFn | None) -> tuple[Any, Any]:
    """MIA-L on the released and the retrained model; MIA-U (posterior L2 distance) against each."""
    from certunlearn.audit.attacks import ATTACKS
    from certunlearn.audit.mia_l import run_mia_l
    from certunlearn.audit.shadows import ShadowSpec

    audit, delta = plan.audit, plan.request.delta
    X_f, y_f = splits["forget"]
    m = int(y_f.shape[0])
    n_out = min(len(ds.y_test), max(4 * m, 50))
    X_o, y_o = ds.X_test[:n_out], ds.y_test[:n_out]
    attacks = tuple(audit.attacks)
    spec = None
    needs_shadows = any(a in ATTACKS and ATTACKS[a].needs_shadows for a in attacks)  # unknown: run_mia_l says
    dtype = thetas["original"].dtype
    if needs_shadows:
        spec = ShadowSpec(model="logreg", n_shadows=int(audit.shadows), training=hf.config.to_dict(),
                          dtype="float64" if dtype == torch.float64 else "float32")
    shadow_X, shadow_y = torch.cat([ds.X_train, X_o]), torch.cat([ds.y_train, y_o])

    def attack(theta: Tensor) -> Any:
        return run_mia_l(
            lambda X: hf.outputs(theta, X), X_f, y_f, X_o, y_o, attacks=attacks,
            shadow_X=shadow_X if needs_shadows else None, shadow_y=shadow_y if needs_shadows else None,
            shadow_spec=spec, alpha=audit.alpha, delta=delta, n_bootstrap=200,
            rng=np.random.default_rng(0), progress=progress,
        )

    mia_l = attack(thetas["released"]).report_section(reference=attack(thetas["retrained"]))  # released first
    if not audit.mia_u:
        return mia_l, None
    X_u = torch.cat([X_f, X_o])
    original, released, reference = (hf.outputs(thetas[k], X_u) for k in ("original", "released", "retrained"))
    l2 = _mia_u_l2(original, released, m, audit.alpha, delta)
    mia_u = AttackSection(attacks=(l2.with_reference(_mia_u_l2(original, reference, m, audit.alpha, delta)),),
                          negatives="out_out (held-out test rows never trained on)")
    return mia_l, mia_u


def _hfocu_summary(hf: Any, ds: Any, result: Any, thetas: dict[str, Tensor], coupled: Tensor,
                   utility: dict[str, Any], verdict: Any) -> dict[str, Any]:
    w, w_ret = thetas["original"], thetas["retrained"]
    return {
        "data": {"name": ds.name, "n_train": ds.n_train, "n_test": int(ds.X_test.shape[0]),
                 "features": ds.num_features, "classes": ds.num_classes},
        "model": {"name": "logreg", "parameters": hf.dim},
        "training": {"steps": len(hf.schedule), "precompute_seconds": hf.precompute_seconds_,
                     "anchor_seconds": getattr(hf, "anchor_seconds_", 0.0),
                     "statistics_bytes": hf.statistics_nbytes, "tracked": int(hf.tracked_ids.size)},
        "forget": {"count": len(result.request_ids), "deletion_seconds": result.elapsed_s},
        "certificate": result.summary(),
        "distance_to_reference": {
            "reference": result.reference,
            "no_unlearning": float((w - w_ret).norm()),
            "noiseless": float((thetas["noiseless"] - w_ret).norm()),
            "released": float((thetas["released"] - w_ret).norm()),
            "measured_bound": result.measured_bound,
            "coupled_retrain_to_reference": float((coupled - w_ret).norm()),
        },
        "accuracy": {"trained": utility["original"], "unlearned_noiseless": utility["noiseless"],
                     "released": utility["released"], "retrained": utility["retrained"]},
        "verdict": verdict,
    }


def run_hfocu_plan(plan: AuditPlan, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The main job of an ``hfocu`` plan: train with statistics, forget, certify, retrain, attack, report.

    Args:
        plan: A parsed ``hfocu`` plan.
        progress: Optional progress callback.

    Returns:
        ``{"report", "seconds", "summary"}`` (nothing is written; :func:`write_report` writes).
    """
    from certunlearn.data import load_dataset
    from certunlearn.jobs.setup import SoftmaxSetup, fit_softmax_hfocu
    from certunlearn.report.build import build_report
    from certunlearn.train import coupled_retrain

    data, training, request = plan.data, plan.training, plan.request
    fraction = _validate_request(request, training)
    setup = SoftmaxSetup(
        dataset=data.dataset, clip_norm=data.clip_norm, epochs=training.epochs,
        batch_size=training.batch_size, lr=training.lr, lr_decay=training.lr_decay,
        weight_decay=training.weight_decay, seed=training.seed,
    )
    started = time.perf_counter()
    n_train = load_dataset(setup.dataset, seed=setup.seed, clip_norm=setup.clip_norm).n_train
    forget, track = _request_ids(plan, n_train, fraction)
    fitted = fit_softmax_hfocu(setup, progress=progress, certificate=request.certificate, track_ids=track)
    ds, hf, model = fitted.data, fitted.hf, fitted.model
    # the release noise comes from the OS CSPRNG (never from the plan's seeds): the report is of a private release
    result = hf.forget(forget, epsilon=request.epsilon, delta=request.delta,
                       request_id=str(request.request_id), sensitivity_budget=request.sensitivity_budget)

    def flat(params: dict[str, Tensor]) -> Tensor:  # a state dict -> the flat vector, in layout order
        return torch.cat([params[k].reshape(-1) for k in hf.params])

    retrained = hf.reference(ds.X_train, ds.y_train, forget)  # the certificate's own reference
    coupled = flat(coupled_retrain(model, ds.X_train, ds.y_train, hf.schedule, hf.config, exclude=forget,
                                   progress=progress)).to(retrained.dtype)
    thetas = {"original": flat(hf.params), "released": flat(result.params_released),
              "noiseless": flat(result.params_noiseless), "retrained": retrained}
    keep = torch.ones(ds.n_train, dtype=torch.bool)
    keep[forget] = False
    splits = {"retain": (ds.X_train[keep], ds.y_train[keep]), "test": (ds.X_test, ds.y_test),
              "forget": (ds.X_train[~keep], ds.y_train[~keep])}
    utility = _utility(hf, thetas, splits)
    if result.certified:
        utility["privacy_utility_curve"] = _privacy_utility_curve(plan, hf, result, thetas["noiseless"], splits)
    mia_l, mia_u = _mia_sections(plan, hf, ds, thetas, splits, progress)
    report = build_report(
        request={"request_id": str(request.request_id), "ids": forget, "scope": plan.claim},
        lineage={"original_params": hf.params, "released_params": result.params_released,
                 "data_manifest": ds.X_train.numpy(), "config": {"plan": plan.raw, "sgd": hf.config.to_dict()},
                 "seeds": {"data": int(data.seed), "training": int(training.seed)}, "device": "cpu",
                 "model": "softmax regression (LogisticRegression)", "dataset": ds.name,
                 "retrain_reference": True},
        certificate=result, utility=utility, mia_l=mia_l, mia_u=mia_u, policy=plan.policy or None,
    )
    summary = _hfocu_summary(hf, ds, result, thetas, coupled, utility, report["verdict"])
    return {"report": report, "seconds": time.perf_counter() - started, "summary": summary}


def _deployed(plan: AuditPlan, progress: ProgressFn | None) -> dict[str, Any]:
    from certunlearn.digest import array_digest
    from certunlearn.jobs.mia_jobs import MIALJob, load_mia_l_inputs, mia_l_job_result
    from certunlearn.jobs.user_files import load_arrays, load_user_model
    from certunlearn.report.build import build_report

    model_s, data, claimed, unlearning, audit = plan.model, plan.data, plan.claimed, plan.unlearning, plan.audit
    job = MIALJob(
        model=model_s.name, weights=model_s.weights, members=data.members,
        non_members=data.non_members, attacks=tuple(audit.attacks), model_args=dict(model_s.args),
        shadow_data=data.shadow_data, shadows=int(audit.shadows), shadow_epochs=int(audit.shadow_epochs),
        shadow_batch_size=int(audit.shadow_batch_size), shadow_lr=float(audit.shadow_lr),
        shadow_weight_decay=float(audit.shadow_weight_decay), delta=float(audit.delta),
        alpha=float(audit.alpha), seed=int(audit.seed),
    )
    started = time.perf_counter()
    loaded = load_mia_l_inputs(job)
    mia_l = mia_l_job_result(job, loaded=loaded, progress=progress).report_section(
        include_roc=False, include_histograms=False)
    model, dtype = loaded.model.eval(), loaded.X_members.dtype
    forget = None if data.forget is None else load_arrays(data.forget)
    with torch.no_grad():
        released = {"retain": _accuracy(model(loaded.X_members), loaded.y_members),
                    "test": _accuracy(model(loaded.X_non_members), loaded.y_non_members)}
        if forget is not None:
            released["forget"] = _accuracy(model(forget[0].to(dtype)), forget[1])
    mia_u = None
    if unlearning.original and unlearning.unlearned and forget is not None:
        labels = torch.cat([loaded.y_members, loaded.y_non_members])
        original, unlearned = (load_user_model(model_s.name, getattr(unlearning, key), X=loaded.X_members, y=labels,
                                               model_args=model_s.args).eval()
                               for key in ("original", "unlearned"))
        X_u = torch.cat([forget[0].to(dtype), loaded.X_non_members])
        with torch.no_grad():
            mia_u = AttackSection(attacks=(_mia_u_l2(original(X_u), unlearned(X_u), len(forget[1]), job.alpha,
                                                     job.delta),),
                                  negatives="out_out (the non-member file)")
    certificate = {"method": claimed.method, "status": "certified" if claimed.certified else "uncertified",
                   "certified": bool(claimed.certified), "epsilon": claimed.epsilon,
                   "delta": claimed.delta, "reasons": [] if claimed.certified else
                   ["the provider states no certificate; the audit checks for detectable leakage only"]}
    # the request is the forget file's rows (or, without one, the audited member rows)
    request_rows = forget if forget is not None else (loaded.X_members, loaded.y_members)
    request = {"request_id": plan.name, "ids": list(range(len(request_rows[1]))), "scope": plan.claim,
               "records_sha256": array_digest(request_rows[0].numpy())}
    report = build_report(
        request=request,
        lineage={"released_params": dict(model.state_dict()), "data_manifest": loaded.X_members.numpy(),
                 "config": {"plan": plan.raw}, "seeds": {"audit": int(audit.seed)}, "device": "cpu",
                 "model": model_s.name, "retrain_reference": False},
        certificate=certificate, utility={"released": released}, mia_l=mia_l, mia_u=mia_u,
        policy=plan.policy or None,
    )
    return {"report": report, "seconds": time.perf_counter() - started, "summary": {"utility": released}}


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """Write ``report.json``, ``report.html`` and ``report.md`` into ``out_dir``; return their paths."""
    from certunlearn.report.render import render_html, render_markdown

    out = check_output_dir(out_dir)
    paths = {"json": out / "report.json", "html": out / "report.html", "md": out / "report.md"}
    write_text_atomic(paths["json"], json.dumps(report, indent=2, sort_keys=True, allow_nan=False))
    write_text_atomic(paths["html"], render_html(report))
    write_text_atomic(paths["md"], render_markdown(report))
    return {k: str(v) for k, v in paths.items()}


def _benchmark(plan: AuditPlan, out_dir: Path) -> dict[str, Any]:
    # runner paths are relative to the repository root: the plan's directory's parent, or the cwd
    candidates = [(Path(plan.base) / ".." / str(plan.runner)).resolve(), (Path.cwd() / str(plan.runner)).resolve()]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise InputError(f"benchmark plan {plan.name!r} needs the repository checkout: {plan.runner} not found")
    if plan.source is None:
        raise InputError("a benchmark plan must be loaded from its file (load_plan)")
    cmd = [sys.executable, str(found), plan.source, "--json", str(out_dir / "results.json")]
    completed = subprocess.run(cmd, check=False)
    return {"returncode": completed.returncode, "command": cmd}


_RUNNERS = {"hfocu": run_hfocu_plan, "deployed": _deployed}


def run_plan(plan: AuditPlan, out_dir: str | Path, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run a plan and write its report files into ``out_dir``.

    Returns:
        ``{"report": dict, "paths": {"json", "html", "md"}, "seconds": float, "summary": dict}``, or
        for ``benchmark`` plans ``{"returncode", "command"}``.
    """
    out = check_output_dir(out_dir)  # before any work
    if plan.kind == "benchmark":
        return _benchmark(plan, out)
    result = _RUNNERS[plan.kind](plan, progress)
    result["paths"] = write_report(result["report"], out)
    return result

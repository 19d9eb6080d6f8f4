"""``certunlearn calibrate | demo | capacity | forget``: calibration and the unlearning jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certunlearn.cli.app import app
from certunlearn.cli.common import (
    emit_json,
    fail,
    handle_errors,
    parse_grid,
    parse_ids,
    parse_options,
    progress_bar,
)
from certunlearn.cli.registry_help import RegistryHelpCommand


@app.command(cls=RegistryHelpCommand)
@handle_errors
def calibrate(
    epsilon: Annotated[float, typer.Option(help="Target epsilon (> 0).")],
    delta: Annotated[float, typer.Option(help="Target delta, in (0, 1).")],
    sensitivity: Annotated[float, typer.Option(help="L2 sensitivity (the bound Delta, > 0).")] = 1.0,
    method: Annotated[str, typer.Option(help="analytic (exact, Balle & Wang 2018) or classical (eps < 1 only).")] = "analytic",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a sentence.")] = False,
) -> None:
    """Gaussian noise sigma that makes a release (epsilon, delta)-certified at a given sensitivity."""
    from certunlearn.certify.gaussian import gaussian_delta, gaussian_sigma

    sigma = gaussian_sigma(epsilon=epsilon, delta=delta, sensitivity=sensitivity, method=method)
    achieved = gaussian_delta(sigma=sigma, epsilon=epsilon, sensitivity=sensitivity)
    if json_output:
        emit_json({"epsilon": epsilon, "delta": delta, "sensitivity": sensitivity, "method": method,
                   "sigma": sigma, "noise_multiplier": sigma / sensitivity, "achieved_delta": achieved})
    else:
        typer.echo(f"sigma = {sigma:.6g}  (epsilon={epsilon:g}, delta={delta:g}, sensitivity={sensitivity:g}, {method})")


@app.command(cls=RegistryHelpCommand)
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Directory for report.json, report.html, report.md and summary.json.")] = Path("certunlearn-demo"),
    epsilon: Annotated[float, typer.Option(help="Epsilon of the certified release.")] = 1.0,
    delta: Annotated[float, typer.Option(help="Delta of the certified release.")] = 1e-5,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 20,
    certificate: Annotated[str, typer.Option(help="refine (measured distance to the exact retrain, under a public budget) or worst-case (a priori bound, coupled retrain).")] = "refine",
    seed: Annotated[int, typer.Option(help="Seed of split, schedule, forget set and noise.")] = 0,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Train softmax regression on digits with HF-OCU, forget 1%, certify, audit (MIA-L, MIA-U) and write the compliance report."""
    from certunlearn.jobs.demo import DemoSpec, run_demo, write_demo
    from certunlearn.jobs.outputs import check_output_dir

    check_output_dir(out)  # before training: a bad --out costs nothing
    spec = DemoSpec(epsilon=epsilon, delta=delta, epochs=epochs, seed=seed, certificate=certificate)
    with progress_bar(progress) as bar:
        summary = run_demo(spec, progress=bar)
    path = write_demo(summary, out)
    cert, dist, acc = summary["certificate"], summary["distance_to_reference"], summary["accuracy"]
    reference = {"erm": "exact retrain", "coupled-sgd": "coupled retrain"}.get(cert["reference"], "reference")
    if cert["certified"]:
        line = f"certificate: certified ({cert['certificate']}, reference: {reference}) Delta={cert['sensitivity']:.4g} "
        if cert["measured_bound"] is not None:
            line += f"(measured bound {cert['measured_bound']:.3g} <= public budget) "
        line += f"sigma={cert['sigma']:.4g} epsilon={cert['epsilon']:g} delta={cert['delta']:g}"
        line += {"secure": ", noise from the OS CSPRNG", "seeded": ", reproducible noise: NOT PRIVATE"}.get(
            cert.get("noise_source"), "")
    else:
        line = f"certificate: {cert['status']}: {'; '.join(cert['reasons'][:2])}"
    typer.echo(
        f"trained softmax regression on {summary['data']['name']} "
        f"(n={summary['data']['n_train']}, d={summary['model']['parameters']}) with HF-OCU statistics for "
        f"{summary['training']['tracked']} ids in {summary['training']['precompute_seconds']:.1f}s\n"
        f"forgot {summary['forget']['count']} samples in {summary['forget']['deletion_seconds'] * 1e3:.1f} ms\n"
        f"{line}\n"
        f"distance to the {reference}: no unlearning {dist['no_unlearning']:.3g}, "
        f"unlearned (noiseless) {dist['noiseless']:.3g}\n"
        f"test accuracy: trained {acc['trained']['test']:.3f}, retrained {acc['retrained']['test']:.3f}, "
        f"unlearned noiseless {acc['unlearned_noiseless']['test']:.3f}, released {acc['released']['test']:.3f}\n"
        f"audit verdict: {summary['verdict']['status']} "
        f"({'; '.join(r['rule'] for r in summary['verdict']['reasons']) or 'no rule triggered'})\n"
        f"report: {path.parent / 'report.html'} (also report.json, report.md); summary: {path}"
    )


@app.command(cls=RegistryHelpCommand)
@handle_errors
def capacity(
    dataset: Annotated[str, typer.Option(help="{datasets}, or a .npz/.pt file with X, y.")] = "digits",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Minibatch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Initial step size.")] = 0.5,
    weight_decay: Annotated[float, typer.Option(help="L2 regularisation (strong convexity).")] = 0.1,
    clip_norm: Annotated[float, typer.Option(help="Public bound on every row's norm.")] = 1.0,
    epsilon: Annotated[float, typer.Option(help="Epsilon of every release.")] = 1.0,
    delta: Annotated[float, typer.Option(help="Delta of every release.")] = 1e-5,
    risk_tolerance: Annotated[float, typer.Option(help="Excess-risk tolerance of the proven capacity.")] = 0.01,
    accuracy_tolerance: Annotated[float, typer.Option(help="Allowed test-accuracy drop below retraining.")] = 0.02,
    m_max: Annotated[int, typer.Option(help="Largest m examined by the proven capacity.")] = 1000,
    grid: Annotated[str, typer.Option(help="Deletion counts tried empirically, comma-separated.")] = "1,2,5,10,20,50,100,200,500,1000",
    repeats: Annotated[int, typer.Option(help="Noise draws per m in the empirical capacity.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of split, schedule, deletion sets and noise.")] = 0,
    certificate: Annotated[str, typer.Option(help="refine (public budget, exact retrain) or worst-case (a priori bound).")] = "refine",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a summary.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """How many deletions a model absorbs: proven (excess-risk bound) and empirical (accuracy vs retrain)."""
    from certunlearn.jobs.capacity import CapacitySpec, run_capacity

    spec = CapacitySpec(
        dataset=dataset, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        clip_norm=clip_norm, epsilon=epsilon, delta=delta, risk_tolerance=risk_tolerance,
        accuracy_tolerance=accuracy_tolerance, m_max=m_max, grid=parse_grid(grid), repeats=repeats,
        seed=seed, certificate=certificate,
    )
    with progress_bar(progress) as bar:
        out = run_capacity(spec, progress=bar)
    if json_output:
        emit_json(out)
        return
    proven, empirical, worst = out["proven"], out["empirical"], out["proven_worst_case"]
    lines = [
        f"proven deletion capacity ({proven['certificate']}): {proven['capacity']} (expected excess risk <= "
        f"{spec.risk_tolerance:g} at epsilon={epsilon:g}, delta={delta:g}; d={out['data']['parameters']}; "
        f"m_max={min(spec.m_max, out['data']['n_train'] - 1)})",
    ]
    if proven["certificate"] != "worst-case":
        lines.append(f"  worst-case certificate instead: {worst['capacity']}")
    if proven["curve"]:
        first = proven["curve"][0]
        lines.append(f"  m=1: Delta={first['sensitivity']:.4g} sigma={first['sigma']:.4g} "
                     f"risk bound={first['excess_risk_bound']:.4g}")
    lines.append(f"empirical deletion capacity: {empirical['capacity']} (released test accuracy within "
                 f"{spec.accuracy_tolerance:g} of the retrained model)")
    for row in empirical["curve"]:
        lines.append(f"  m={row['m']}: released {row['released_accuracy']:.3f} vs retrained "
                     f"{row['retrained_accuracy']:.3f} ({'ok' if row['ok'] else 'too low'}, "
                     f"{'certified' if row['certified'] else 'uncertified'}, sigma={row['sigma']:.3g})")
    typer.echo("\n".join(lines))


@app.command(cls=RegistryHelpCommand)
@handle_errors
def forget(
    model: Annotated[str | None, typer.Option(help="{models}, or 'package.module:factory' (without --state).")] = None,
    weights: Annotated[Path | None, typer.Option(help="Trained state_dict (.pt, loaded weights-only; without --state).")] = None,
    data: Annotated[Path | None, typer.Option(help="Training data as the model saw it (.npz/.pt with X, y); ids = rows of X (without --state).")] = None,
    state: Annotated[Path | None, typer.Option(help="A state directory made by `certunlearn fit`: serve the request from its HF-OCU statistics and ledger (with --request-id).")] = None,
    request_id: Annotated[str | None, typer.Option(help="The request's id (with --state): a repeated id returns the stored release and changes nothing.")] = None,
    ids: Annotated[str | None, typer.Option(help="Ids to forget, comma-separated.")] = None,
    ids_file: Annotated[Path | None, typer.Option(help="File with ids to forget (commas, spaces or newlines).")] = None,
    method: Annotated[str, typer.Option(help="A post-hoc method: {posthoc_methods}.")] = "curenewton",
    model_arg: Annotated[list[str] | None, typer.Option(help="Factory argument key=value (repeatable), e.g. hidden=[64].")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Method option key=value (repeatable), e.g. cubic_reg=0.1.")] = None,
    weight_decay: Annotated[float, typer.Option(help="L2 weight the model was trained with.")] = 0.0,
    loss: Annotated[str, typer.Option(help="Per-sample loss: cross_entropy or mse.")] = "cross_entropy",
    feature_norm_bound: Annotated[float | None, typer.Option(help="Public bound on the rows' norm (certificates for logreg).")] = None,
    optimality_gap: Annotated[float | None, typer.Option(help="Public bound on the trained model's gradient norm.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="Epsilon of a noisy release (with --delta).")] = None,
    delta: Annotated[float | None, typer.Option(help="Delta of a noisy release.")] = None,
    noise_sensitivity: Annotated[float | None, typer.Option(help="User-chosen sensitivity for noise when uncertified.")] = None,
    certificate: Annotated[str | None, typer.Option(help="refine (default for logreg with weight decay: Newton refinement measured against the exact retrain) or worst-case (a priori bound).")] = None,
    sensitivity_budget: Annotated[float | None, typer.Option(help="Public budget Delta_b of a refine release (default: the budget rule, needs --feature-norm-bound).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the minibatches of stochastic methods (never of the noise).")] = 0,
    insecure_noise_seed: Annotated[int | None, typer.Option(help="Seed the release noise for a reproducible run. NOT PRIVATE: anyone with the seed can subtract the noise; the release is labelled 'reproducible noise: not private'. Default: noise from the OS CSPRNG.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (released.pt, forget.json); default certunlearn-forget, or none with --state (the release stays in the state).")] = None,
    save_noiseless: Annotated[bool, typer.Option("--save-noiseless", help="Also write the private noiseless weights.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Forget ids: from a state made by `certunlearn fit` (--state, HF-OCU, durable ledger), or from a trained model you bring (CureNewton and baselines)."""
    from certunlearn.jobs.forget import ForgetSpec, run_forget

    if state is not None:
        from certunlearn.cli.service_commands import forget_from_state

        given = [name for name, value in (("--model", model), ("--weights", weights), ("--data", data),
                                           ("--option", option), ("--model-arg", model_arg)) if value]
        if given:
            raise fail(f"--state serves the state's own model and data: drop {', '.join(given)}")
        forget_from_state(state, request_id, parse_ids(ids, ids_file), epsilon=epsilon, delta=delta,
                          insecure_noise_seed=insecure_noise_seed, sensitivity_budget=sensitivity_budget,
                          out=out, json_output=json_output)
        return
    missing = [name for name, value in (("--model", model), ("--weights", weights), ("--data", data)) if value is None]
    if missing:
        raise fail(f"give --state DIR, or {', '.join(missing)} for a model you bring")
    if request_id is not None:
        raise fail("--request-id needs --state (a model you bring has no ledger)")
    out = Path("certunlearn-forget") if out is None else out
    spec = ForgetSpec(
        model=model, weights=str(weights), data=str(data), ids=parse_ids(ids, ids_file), method=method,
        model_args=parse_options(model_arg, "--model-arg"), method_args=parse_options(option, "--option"),
        weight_decay=weight_decay, loss=loss, feature_norm_bound=feature_norm_bound,
        optimality_gap=optimality_gap, epsilon=epsilon, delta=delta, noise_sensitivity=noise_sensitivity,
        seed=seed, insecure_noise_seed=insecure_noise_seed, out=str(out), save_noiseless=save_noiseless,
        certificate=certificate, sensitivity_budget=sensitivity_budget,
    )
    summary = run_forget(spec)
    if json_output:
        emit_json(summary)
        return
    res = summary["result"]
    measured = f", measured bound {res['measured_bound']:.3g}" if res.get("measured_bound") is not None else ""
    cert = (f"certified ({res['certificate']}, reference {res['reference']}: Delta={res['sensitivity']:.4g}"
            f"{measured}, sigma={res['sigma']:.4g})" if res["certified"]
            else "uncertified: " + "; ".join(res["reasons"][:2]))
    typer.echo(
        f"{res['method']}: forgot {len(res['request_ids'])} ids in {res['elapsed_s']:.3g}s; "
        f"step norm {res.get('step_norm', float('nan')):.4g}, retained loss {res.get('retained_loss', float('nan')):.4g}\n"
        f"{cert}\nreleased weights written to {out / 'released.pt'}"
    )
    if res.get("noise_source") == "seeded":
        typer.echo("WARNING: reproducible noise: not private (--insecure-noise-seed); do not publish this "
                   "release as a private one", err=True)

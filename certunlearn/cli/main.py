"""Entry point of the ``certunlearn`` command. Imports no torch until a command needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certunlearn._version import __version__
from certunlearn.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    emit_json,
    fail,
    handle_errors,
    progress_bar,
)

app = typer.Typer(
    name="certunlearn",
    help="Certified machine unlearning and privacy auditing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"certunlearn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Certified machine unlearning (HF-OCU) and privacy auditing."""


@app.command()
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


@app.command()
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
    from certunlearn.demo import DemoSpec, run_demo, write_demo

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


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated option as its non-empty, stripped items."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_grid(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise fail(f"--grid must be comma-separated integers, got {text!r}") from None


@app.command()
@handle_errors
def capacity(
    dataset: Annotated[str, typer.Option(help="digits, wine, breast_cancer, or a .npz/.pt file with X, y.")] = "digits",
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
    from certunlearn.capacity_job import CapacitySpec, run_capacity

    spec = CapacitySpec(
        dataset=dataset, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        clip_norm=clip_norm, epsilon=epsilon, delta=delta, risk_tolerance=risk_tolerance,
        accuracy_tolerance=accuracy_tolerance, m_max=m_max, grid=_parse_grid(grid), repeats=repeats,
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


def _parse_ids(ids: str | None, ids_file: Path | None) -> tuple[int, ...]:
    if (ids is None) == (ids_file is None):
        raise fail("give exactly one of --ids and --ids-file")
    text = ids if ids is not None else _read_text(ids_file)  # type: ignore[arg-type]
    parts = _names(text.replace("\n", ",").replace(" ", ","))
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise fail(f"sample ids must be integers, got {list(parts[:5])}") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read ({exc})") from None


def _parse_options(items: list[str] | None, flag: str) -> dict[str, object]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, lists, true/false)."""
    import json as _json

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} takes key=value, got {item!r}")
        try:
            out[key.strip()] = _json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


@app.command()
@handle_errors
def forget(
    model: Annotated[str, typer.Option(help="logreg, mlp, cnn, or 'package.module:factory'.")],
    weights: Annotated[Path, typer.Option(help="Trained state_dict (.pt, loaded weights-only).")],
    data: Annotated[Path, typer.Option(help="Training data as the model saw it (.npz/.pt with X, y); ids = rows of X.")],
    ids: Annotated[str | None, typer.Option(help="Ids to forget, comma-separated.")] = None,
    ids_file: Annotated[Path | None, typer.Option(help="File with ids to forget (commas, spaces or newlines).")] = None,
    method: Annotated[str, typer.Option(help="curenewton, newton, damped-newton, pinv-newton, abs-newton, influence, finetune, gradient-ascent, retrain.")] = "curenewton",
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
    seed: Annotated[int, typer.Option(help="Seed of the noise and of minibatches.")] = 0,
    out: Annotated[Path, typer.Option(help="Output directory (released.pt, forget.json).")] = Path("certunlearn-forget"),
    save_noiseless: Annotated[bool, typer.Option("--save-noiseless", help="Also write the private noiseless weights.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Unlearn ids from a trained model you bring (no statistics needed): CureNewton and baselines."""
    from certunlearn.forget_job import ForgetSpec, run_forget

    spec = ForgetSpec(
        model=model, weights=str(weights), data=str(data), ids=_parse_ids(ids, ids_file), method=method,
        model_args=_parse_options(model_arg, "--model-arg"), method_args=_parse_options(option, "--option"),
        weight_decay=weight_decay, loss=loss, feature_norm_bound=feature_norm_bound,
        optimality_gap=optimality_gap, epsilon=epsilon, delta=delta, noise_sensitivity=noise_sensitivity,
        seed=seed, out=str(out), save_noiseless=save_noiseless, certificate=certificate,
        sensitivity_budget=sensitivity_budget,
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


class _AuditGroup(typer.core.TyperGroup):
    """``certunlearn audit PLAN.toml`` runs a plan; ``certunlearn audit mia-l|mia-u|run`` are commands."""

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0].endswith(".toml"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


audit_app = typer.Typer(
    name="audit",
    cls=_AuditGroup,
    help="Audits: run a plan (certunlearn audit audits/PLAN.toml) or attack a model (mia-l) or an "
    "unlearning (mia-u).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _write_or_print(result: dict, out: Path | None) -> None:
    import json as _json

    if out is None:
        emit_json(result)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_json.dumps(result, sort_keys=True, indent=2, default=str))
    typer.echo(f"results written to {out}", err=True)


@audit_app.command("run")
@handle_errors
def audit_run(
    plan: Annotated[Path, typer.Argument(help="An audit plan (audits/*.toml).")],
    out: Annotated[Path | None, typer.Option(help="Directory for report.json/.html/.md (default: audit-<plan name>).")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Run an audit plan end to end and write the compliance report; exit 1 if the verdict is FAIL."""
    from certunlearn.audit.pipeline import run_plan
    from certunlearn.audit.plan import load_plan

    loaded = load_plan(plan)
    target = out or Path(f"audit-{loaded.name}")
    with progress_bar(progress) as bar:
        result = run_plan(loaded, target, progress=bar)
    if loaded.kind == "benchmark":
        if result["returncode"] != 0:
            raise fail(f"benchmark plan {loaded.name} failed (exit {result['returncode']})", EXIT_CHECK_FAILED)
        typer.echo(f"benchmark plan {loaded.name}: results in {target / 'results.json'}")
        return
    verdict = result["report"]["verdict"]
    reasons = "; ".join(f"{r['rule']}: {r['message']}" for r in verdict["reasons"]) or "no rule triggered"
    typer.echo(f"{loaded.name}: {verdict['status']} ({reasons})\nreport: {result['paths']['html']} "
               f"(also {Path(result['paths']['json']).name}, {Path(result['paths']['md']).name})")
    if verdict["status"] == "FAIL":
        raise typer.Exit(EXIT_CHECK_FAILED)


@audit_app.command("mia-l")
@handle_errors
def audit_mia_l(
    model: Annotated[str, typer.Option(help="logreg, mlp, cnn, or 'package.module:factory'.")],
    weights: Annotated[Path, typer.Option(help="The audited model's state_dict (.pt, weights-only).")],
    members: Annotated[Path, typer.Option(help="Data the model was trained on (.npz/.pt with X, y).")],
    non_members: Annotated[Path, typer.Option(help="Data the model never saw.")],
    attacks: Annotated[str, typer.Option(help="Comma-separated: loss, lira-online, lira-offline, lira-online-fixed, lira-offline-fixed, rmia, rmia-offline.")] = "loss,lira-online,lira-offline,rmia",
    model_arg: Annotated[list[str] | None, typer.Option(help="Factory argument key=value (repeatable).")] = None,
    shadow_data: Annotated[Path | None, typer.Option(help="Data for shadow models (default: members + non-members).")] = None,
    shadows: Annotated[int, typer.Option(help="Number of shadow models.")] = 16,
    shadow_epochs: Annotated[int, typer.Option(help="Epochs of each shadow model.")] = 20,
    shadow_batch_size: Annotated[int, typer.Option(help="Minibatch size of each shadow model.")] = 64,
    shadow_lr: Annotated[float, typer.Option(help="Step size of each shadow model.")] = 0.1,
    shadow_weight_decay: Annotated[float, typer.Option(help="Weight decay of each shadow model.")] = 0.0,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache of trained shadows (reused on reruns).")] = None,
    delta: Annotated[float, typer.Option(help="Delta of the epsilon lower bounds.")] = 1e-5,
    alpha: Annotated[float, typer.Option(help="Error level of intervals and bounds.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of shadows and bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Attack a model's membership (LOSS, LiRA, RMIA) and bound epsilon from below."""
    from certunlearn.audit.runner import MIALJob, run_mia_l_job

    job = MIALJob(
        model=model, weights=str(weights), members=str(members), non_members=str(non_members),
        attacks=_names(attacks),
        model_args=_parse_options(model_arg, "--model-arg"),
        shadow_data=None if shadow_data is None else str(shadow_data), shadows=shadows,
        shadow_epochs=shadow_epochs, shadow_batch_size=shadow_batch_size, shadow_lr=shadow_lr,
        shadow_weight_decay=shadow_weight_decay, cache_dir=None if cache_dir is None else str(cache_dir),
        delta=delta, alpha=alpha, seed=seed,
    )
    with progress_bar(progress) as bar:
        result = run_mia_l_job(job, progress=bar)
    _write_or_print(result, out)


@audit_app.command("mia-u")
@handle_errors
def audit_mia_u(
    model: Annotated[str, typer.Option(help="logreg, mlp, cnn, or 'package.module:factory'.")],
    original: Annotated[Path, typer.Option(help="state_dict before unlearning.")],
    unlearned: Annotated[Path, typer.Option(help="state_dict after unlearning.")],
    forget: Annotated[Path, typer.Option(help="The forgotten records (.npz/.pt with X, y).")],
    negatives: Annotated[Path, typer.Option(help="Records neither model trained on (or retained ones with --negatives-kind in_in).")],
    shadow_data: Annotated[Path, typer.Option(help="Data for the shadow protocol that trains the attack.")],
    model_arg: Annotated[list[str] | None, typer.Option(help="Factory argument key=value (repeatable).")] = None,
    negatives_kind: Annotated[str, typer.Option(help="out_out (never trained) or in_in (retained).")] = "out_out",
    shadow_originals: Annotated[int, typer.Option(help="Shadow original models per universe.")] = 4,
    unlearned_per_original: Annotated[int, typer.Option(help="Single-record unlearnings per original.")] = 10,
    records_per_original: Annotated[int, typer.Option(help="Training records of each shadow original.")] = 200,
    shadow_epochs: Annotated[int, typer.Option(help="Epochs of each shadow model.")] = 20,
    shadow_batch_size: Annotated[int, typer.Option(help="Minibatch size of each shadow model.")] = 32,
    shadow_lr: Annotated[float, typer.Option(help="Step size of each shadow model.")] = 0.1,
    shadow_weight_decay: Annotated[float, typer.Option(help="Weight decay of each shadow model.")] = 0.0,
    attack_models: Annotated[str, typer.Option(help="Comma-separated: logistic_regression, decision_tree, random_forest, mlp.")] = "logistic_regression,random_forest",
    delta: Annotated[float, typer.Option(help="Delta of the epsilon lower bounds.")] = 1e-5,
    alpha: Annotated[float, typer.Option(help="Error level of intervals and bounds.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the protocol.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Attack an unlearning operation (Chen et al.): does original vs unlearned reveal the forgotten records?"""
    from certunlearn.audit.runner import MIAUJob, run_mia_u_job

    job = MIAUJob(
        model=model, original=str(original), unlearned=str(unlearned), forget=str(forget),
        negatives=str(negatives), shadow_data=str(shadow_data),
        model_args=_parse_options(model_arg, "--model-arg"), negatives_kind=negatives_kind,
        shadow_originals=shadow_originals, unlearned_per_original=unlearned_per_original,
        records_per_original=records_per_original, shadow_epochs=shadow_epochs,
        shadow_batch_size=shadow_batch_size, shadow_lr=shadow_lr, shadow_weight_decay=shadow_weight_decay,
        attack_models=_names(attack_models),
        delta=delta, alpha=alpha, seed=seed,
    )
    with progress_bar(progress) as bar:
        result = run_mia_u_job(job, progress=bar)
    _write_or_print(result, out)


# --- certunlearn report: validate and render compliance reports (certunlearn.report) -------------

report_app = typer.Typer(
    name="report",
    help="Validate compliance reports (report.json) and render them as HTML / Markdown.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


def _load_report_json(path: Path) -> object:
    """Parse a report file ('-' = stdin): strict JSON (no NaN/Infinity, no duplicate keys), else exit 2."""
    import json as _json
    import sys as _sys

    def no_constants(token: str) -> object:
        raise ValueError(f"{token} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    text = _sys.stdin.read() if str(path) == "-" else _read_text(path)
    try:
        return _json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise fail(f"{path}: not JSON ({exc})") from None


def _load_valid_report(path: Path, code: int) -> dict:
    """The report at ``path``, validated; an invalid one exits with ``code``."""
    from certunlearn.report.schema import ReportValidationError, validate_report

    data = _load_report_json(path)
    try:
        validate_report(data)
    except ReportValidationError as exc:
        raise fail(f"{path}: invalid report: {exc}", code) from None
    return data  # type: ignore[return-value]  # validate_report: a JSON object


@report_app.command("validate")
@handle_errors
def report_validate(
    report: Annotated[Path, typer.Argument(help="The report JSON ('-' reads stdin).")],
) -> None:
    """Check a report against its versioned schema, its digest and its verdict (exit 1 if invalid)."""
    checked = _load_valid_report(report, EXIT_CHECK_FAILED)
    typer.echo(f"{report}: valid (schema_version {checked['schema_version']}, verdict "
               f"{checked['verdict']['status']}, digest {checked['report_digest']})")


@report_app.command("render")
@handle_errors
def report_render(
    report: Annotated[Path, typer.Argument(help="The report JSON ('-' reads stdin).")],
    html: Annotated[Path | None, typer.Option("--html", help="Write self-contained HTML here ('-' = stdout).")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write Markdown here ('-' = stdout).")] = None,
) -> None:
    """Render a validated report as HTML and/or Markdown (default: both, beside REPORT.json)."""
    from certunlearn.report.render import render_html, render_markdown

    data = _load_valid_report(report, EXIT_USAGE)
    if html is None and md is None:
        if str(report) == "-":
            md = Path("-")
        else:
            html, md = report.with_suffix(".html"), report.with_suffix(".md")
    written = []
    for target, render in ((html, render_html), (md, render_markdown)):
        if target is None:
            continue
        text = render(data, validate=False)  # type: ignore[operator]
        if str(target) == "-":
            typer.echo(text, nl=False)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(str(target))
    if written:
        typer.echo(f"verdict {data['verdict']['status']}; wrote " + ", ".join(written), err=True)  # type: ignore[index]


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

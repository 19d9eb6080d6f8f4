"""``certunlearn audit run | mia-l | mia-u``: audit plans and membership-inference jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certunlearn.cli.app import app
from certunlearn.cli.common import (
    EXIT_CHECK_FAILED,
    fail,
    handle_errors,
    parse_options,
    progress_bar,
    split_names,
    write_or_print,
)
from certunlearn.cli.registry_help import RegistryHelpCommand


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


@audit_app.command("run", cls=RegistryHelpCommand)
@handle_errors
def audit_run(
    plan: Annotated[Path, typer.Argument(help="An audit plan (audits/*.toml).")],
    out: Annotated[Path | None, typer.Option(help="Directory for report.json/.html/.md (default: audit-<plan name>).")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Run an audit plan end to end and write the compliance report; exit 1 if the verdict is FAIL."""
    from certunlearn.jobs.plan import load_plan
    from certunlearn.jobs.plan_run import run_plan

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


@audit_app.command("mia-l", cls=RegistryHelpCommand)
@handle_errors
def audit_mia_l(
    model: Annotated[str, typer.Option(help="{models}, or 'package.module:factory'.")],
    weights: Annotated[Path, typer.Option(help="The audited model's state_dict (.pt, weights-only).")],
    members: Annotated[Path, typer.Option(help="Data the model was trained on (.npz/.pt with X, y).")],
    non_members: Annotated[Path, typer.Option(help="Data the model never saw.")],
    attacks: Annotated[str, typer.Option(help="Comma-separated: {attacks}.")] = "loss,lira-online,lira-offline,rmia",
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
    from certunlearn.jobs.mia_jobs import MIALJob, run_mia_l_job
    from certunlearn.jobs.outputs import check_output_file

    if out is not None:
        check_output_file(out)  # before any shadow model is trained

    job = MIALJob(
        model=model, weights=str(weights), members=str(members), non_members=str(non_members),
        attacks=split_names(attacks),
        model_args=parse_options(model_arg, "--model-arg"),
        shadow_data=None if shadow_data is None else str(shadow_data), shadows=shadows,
        shadow_epochs=shadow_epochs, shadow_batch_size=shadow_batch_size, shadow_lr=shadow_lr,
        shadow_weight_decay=shadow_weight_decay, cache_dir=None if cache_dir is None else str(cache_dir),
        delta=delta, alpha=alpha, seed=seed,
    )
    with progress_bar(progress) as bar:
        result = run_mia_l_job(job, progress=bar)
    write_or_print(result, out)


@audit_app.command("mia-u", cls=RegistryHelpCommand)
@handle_errors
def audit_mia_u(
    model: Annotated[str, typer.Option(help="{models}, or 'package.module:factory'.")],
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
    attack_models: Annotated[str, typer.Option(help="Comma-separated: {attack_classifiers}.")] = "logistic_regression,random_forest",
    delta: Annotated[float, typer.Option(help="Delta of the epsilon lower bounds.")] = 1e-5,
    alpha: Annotated[float, typer.Option(help="Error level of intervals and bounds.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the protocol.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Attack an unlearning operation (Chen et al.): does original vs unlearned reveal the forgotten records?"""
    from certunlearn.jobs.mia_jobs import MIAUJob, run_mia_u_job
    from certunlearn.jobs.outputs import check_output_file

    if out is not None:
        check_output_file(out)  # before any shadow model is trained

    job = MIAUJob(
        model=model, original=str(original), unlearned=str(unlearned), forget=str(forget),
        negatives=str(negatives), shadow_data=str(shadow_data),
        model_args=parse_options(model_arg, "--model-arg"), negatives_kind=negatives_kind,
        shadow_originals=shadow_originals, unlearned_per_original=unlearned_per_original,
        records_per_original=records_per_original, shadow_epochs=shadow_epochs,
        shadow_batch_size=shadow_batch_size, shadow_lr=shadow_lr, shadow_weight_decay=shadow_weight_decay,
        attack_models=split_names(attack_models),
        delta=delta, alpha=alpha, seed=seed,
    )
    with progress_bar(progress) as bar:
        result = run_mia_u_job(job, progress=bar)
    write_or_print(result, out)

"""``certunlearn fit | init-state | status`` and the ``--state`` paths of ``forget`` and ``report``: a model's durable state.

``fit`` trains with HF-OCU statistics and creates the state directory; ``forget --state DIR
--request-id R --ids ...`` serves one deletion request from it (idempotent: a repeated request id
returns the stored release); ``init-state`` creates the state of a trained model you bring, served by
a post-hoc method; ``status --state DIR`` says where it stands (releases, cumulative
deletions, budget and capacity left, composed ε, integrity); ``report --state DIR --request-id R``
writes the compliance report of one request from the ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from certunlearn.cli.app import app
from certunlearn.cli.common import emit_json, fail, handle_errors, parse_options, progress_bar
from certunlearn.cli.registry_help import RegistryHelpCommand

__all__ = ["forget_from_state", "report_from_state"]


@app.command(cls=RegistryHelpCommand)
@handle_errors
def fit(
    data: Annotated[str | None, typer.Option(help="{datasets}, or a .npz/.pt file with X, y (ids = rows of X).")] = None,
    state: Annotated[Path | None, typer.Option(help="The new state directory (must not exist, or be empty).")] = None,
    model: Annotated[str | None, typer.Option(help="{models}, or 'package.module:factory' (default logreg).")] = None,
    model_arg: Annotated[list[str] | None, typer.Option(help="Factory argument key=value (repeatable).")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file with these options as keys ([model_args], [policy] tables); options given here override it.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default 10).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size (default 128).")] = None,
    lr: Annotated[float | None, typer.Option(help="Initial step size (default 0.5).")] = None,
    lr_decay: Annotated[float | None, typer.Option(help="Step-size decay per step (default 0.999).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="L2 regularisation (default 0.1).")] = None,
    clip_norm: Annotated[float | None, typer.Option(help="Public bound on every row's norm (rows are clipped to it; default 1).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split and the batch schedule (default 0).")] = None,
    track_fraction: Annotated[float | None, typer.Option(help="Share of the training ids whose statistics are recorded (default 1: all may ask to be forgotten).")] = None,
    certificate: Annotated[str | None, typer.Option(help="refine or worst-case (default: refine where it applies).")] = None,
    policy: Annotated[Path | None, typer.Option(help="A TOML file with the ledger policy (epsilon, delta, max_deletions, max_releases, max_sensitivity, require_certified).")] = None,
    ledger: Annotated[str | None, typer.Option(help="PostgreSQL URL of the ledger (postgresql://user@host/db, no password: use PGPASSWORD, ~/.pgpass or ?service=); default: ledger.sqlite in the state.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the new state's status as JSON.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Train with HF-OCU statistics on your data and create the model's state directory for later requests."""
    import tomllib

    from certunlearn.errors import InputError
    from certunlearn.jobs.fit import FitSpec, run_fit

    if state is None:
        raise fail("--state DIR is required: the directory the model's state is written to")
    options: dict[str, Any] = {k: v for k, v in dict(
        data=data, model=model, epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
        weight_decay=weight_decay, clip_norm=clip_norm, seed=seed, track_fraction=track_fraction,
        certificate=certificate).items() if v is not None}
    if model_arg:
        options["model_args"] = parse_options(model_arg, "--model-arg")
    if policy is not None:
        try:
            options["policy"] = tomllib.loads(policy.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{policy}: not a readable TOML policy ({exc})") from None
    if config is not None:
        spec = FitSpec.from_toml(config, **options)
    elif "data" not in options:
        raise fail("--data is required (or a --config file that names it)")
    else:
        spec = FitSpec(**options)
    with progress_bar(progress) as bar:
        service = run_fit(spec, state, progress=bar, ledger_url=ledger)
    with service:
        status = service.status()
    if json_output:
        emit_json(status)
        return
    model_name = status["model"].get("name") if isinstance(status["model"], dict) else status["model"]
    typer.echo(f"state {state}: {model_name} on {status['n_samples']} rows, {status['tracked']} ids tracked, "
               f"certificate {status['certificate'].get('certificate')}; serve requests with "
               f"`certunlearn forget --state {state} --request-id R --ids ...`")


@app.command("init-state", cls=RegistryHelpCommand)
@handle_errors
def init_state(
    model: Annotated[str, typer.Option(help="{models}, or 'package.module:factory'.")],
    weights: Annotated[Path, typer.Option(help="Trained state_dict (.pt, loaded weights-only; copied into the state).")],
    data: Annotated[Path, typer.Option(help="Training data as the model saw it (.npz/.pt with X, y); ids = rows of X.")],
    state: Annotated[Path, typer.Option(help="The new state directory (must not exist, or be empty).")],
    method: Annotated[str, typer.Option(help="A post-hoc method: curenewton, newton, damped-newton, ...")] = "curenewton",
    option: Annotated[list[str] | None, typer.Option(help="Method option key=value (repeatable).")] = None,
    model_arg: Annotated[list[str] | None, typer.Option(help="Factory argument key=value (repeatable).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="L2 regularisation the model was trained with.")] = None,
    feature_norm_bound: Annotated[float | None, typer.Option(help="Public bound on every row's norm (derived constants for logreg).")] = None,
    certificate: Annotated[str | None, typer.Option(help="refine or worst-case (default: refine where it applies).")] = None,
    ledger: Annotated[str | None, typer.Option(help="PostgreSQL URL of the ledger (no password); default: ledger.sqlite in the state.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the new state's status as JSON.")] = False,
) -> None:
    """Create a durable state for a trained model you bring, served by a post-hoc method (`forget --state`)."""
    from certunlearn.jobs.init_state import InitStateSpec, run_init_state

    spec = InitStateSpec(model=model, weights=str(weights), data=str(data), method=method,
                         options=parse_options(option, "--option"), model_args=parse_options(model_arg, "--model-arg"),
                         weight_decay=weight_decay, feature_norm_bound=feature_norm_bound, certificate=certificate,
                         ledger_url=ledger)
    with run_init_state(spec, state) as service:
        out = service.status()
    if json_output:
        emit_json(out)
        return
    typer.echo(f"state {state}: {method} on {out['n_samples']} rows, certificate "
               f"{out['certificate'].get('certificate')}; serve requests with "
               f"`certunlearn forget --state {state} --request-id R --ids ...`")


@app.command(cls=RegistryHelpCommand)
@handle_errors
def status(
    state: Annotated[Path, typer.Option(help="A state directory made by `certunlearn fit`.")],
    deep: Annotated[bool, typer.Option("--deep", help="Hash every file of the state (default: sizes and presence).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Releases, cumulative deletions, budget and deletion capacity left, composed epsilon, last release, integrity."""
    from certunlearn.service import DeletionService

    with DeletionService.open(state) as service:
        out = service.status(deep=deep)
    if json_output:
        emit_json(out)
        return
    last = out.get("last_release") or {}
    integrity = out["integrity"] if out["integrity"] == "ok" else "; ".join(map(str, out["integrity"]))
    lines = [f"state {state}: {out['releases']} release(s), {out['cumulative_deletions']} deletion(s); "
             f"integrity {integrity}"]
    lines.append(f"ledger: {out.get('ledger')}")
    if last:
        lines.append(f"last release #{last['seq']} ({last['request_id']}): {last['model_after']} "
                     f"noise {last.get('noise_source')}")
    budget = out.get("budget") or {}
    composed = budget.get("composed") or {}
    if composed and composed.get("epsilon") is not None:
        lines.append(f"published releases composed: epsilon={composed['epsilon']:.4g} (opacus RDP; exact "
                     f"{composed['exact_epsilon']:.4g}) at delta={composed['delta']:.3g}; conservative basic sum "
                     f"epsilon={composed['basic_epsilon']:.4g}, delta={composed['basic_delta']:.3g}")
    elif composed:
        lines.append(f"published releases: no composed epsilon ({composed.get('note')}); basic sum "
                     f"epsilon={composed.get('basic_epsilon')}, delta={composed.get('basic_delta')}")
    elif budget.get("composed_epsilon") is not None:
        lines.append(f"published releases, basic composition: epsilon={budget['composed_epsilon']:g}, "
                     f"delta={budget['composed_delta']:g}")
    capacity = out.get("deletion_capacity") or {}
    if capacity:
        lines.append(f"deletion capacity left: {capacity.get('left')} ids ({capacity.get('limited_by')})")
    typer.echo("\n".join(lines))


def forget_from_state(state: Path, request_id: str | None, ids: tuple[int, ...], *, epsilon: float | None,
                      delta: float | None, insecure_noise_seed: int | None, sensitivity_budget: float | None,
                      out: Path | None, json_output: bool) -> None:
    """``certunlearn forget --state``: one idempotent request against the state's ledger."""
    from certunlearn.jobs.outputs import check_output_dir
    from certunlearn.service import DeletionService

    if request_id is None:
        raise fail("--state needs --request-id: requests are recorded (and made idempotent) by their id")
    if out is not None:
        check_output_dir(out)
    with DeletionService.open(state) as service:
        defaults = service.request_defaults or {}
        epsilon = defaults.get("epsilon") if epsilon is None else epsilon
        delta = defaults.get("delta") if delta is None else delta
        if epsilon is None or delta is None:
            raise fail("give --epsilon and --delta (this state stores no defaults)")
        outcome = service.forget(request_id, ids, epsilon=epsilon, delta=delta,
                                 insecure_noise_seed=insecure_noise_seed, sensitivity_budget=sensitivity_budget)
    if out is not None:
        from certunlearn.jobs.outputs import write_atomic

        source = Path(outcome.released_path)
        write_atomic(out / "released.pt", lambda handle: handle.write(source.read_bytes()))
    if json_output:
        emit_json(outcome.as_dict())
        return
    res = outcome.summary
    how = "already executed: the stored release, nothing changed" if outcome.status == "repeated" else "released"
    cert = (f"certified ({res.get('certificate')}, sigma={res.get('sigma'):.4g})" if res.get("certified")
            else "uncertified: " + "; ".join(res.get("reasons", [])[:2]))
    typer.echo(f"request {outcome.request_id} (release #{outcome.seq}): {how}; {cert}\n"
               f"released weights: {out / 'released.pt' if out is not None else outcome.released_path} "
               f"(digest {outcome.model_after})")
    if res.get("noise_source") == "seeded":
        typer.echo("WARNING: reproducible noise: not private (--insecure-noise-seed)", err=True)


def report_from_state(state: Path, request_id: str | None, out: Path | None) -> None:
    """``certunlearn report --state DIR --request-id R --out D``: the compliance report from the ledger."""
    from certunlearn.jobs.outputs import check_output_dir
    from certunlearn.jobs.plan_run import write_report
    from certunlearn.service import DeletionService

    if request_id is None:
        raise fail("--state needs --request-id: the request whose report to write")
    target = check_output_dir(out if out is not None else Path(f"report-{request_id}"))
    with DeletionService.open(state) as service:
        report = service.report(request_id)
    paths = write_report(report, target)
    typer.echo(f"{request_id}: {report['verdict']['status']}; report: {paths['html']} "
               f"(also {Path(paths['json']).name}, {Path(paths['md']).name})")

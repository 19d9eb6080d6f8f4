"""Entry point of the ``certunlearn`` command. Imports no torch until a command needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from certunlearn._version import __version__
from certunlearn.cli.common import emit_json, fail, handle_errors, progress_bar

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
    out: Annotated[Path, typer.Option(help="Directory for summary.json.")] = Path("certunlearn-demo"),
    epsilon: Annotated[float, typer.Option(help="Epsilon of the certified release.")] = 1.0,
    delta: Annotated[float, typer.Option(help="Delta of the certified release.")] = 1e-5,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of split, schedule, forget set and noise.")] = 0,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """Train softmax regression on digits with HF-OCU, forget 1% of it, certify, compare to retraining."""
    from certunlearn.demo import DemoSpec, run_demo, write_demo

    spec = DemoSpec(epsilon=epsilon, delta=delta, epochs=epochs, seed=seed)
    with progress_bar(progress) as bar:
        summary = run_demo(spec, progress=bar)
    path = write_demo(summary, out)
    cert, dist, acc = summary["certificate"], summary["distance_to_coupled_retrain"], summary["accuracy"]
    typer.echo(
        f"trained softmax regression on {summary['data']['name']} "
        f"(n={summary['data']['n_train']}, d={summary['model']['parameters']}) with HF-OCU statistics "
        f"in {summary['training']['precompute_seconds']:.1f}s\n"
        f"forgot {summary['forget']['count']} samples in {summary['forget']['deletion_seconds'] * 1e3:.2f} ms\n"
        f"certificate: {cert['status']}  Delta={cert['sensitivity']:.4g}  sigma={cert['sigma']:.4g} "
        f"(noise-only release would need sigma={cert['noise_only_sigma']:.4g})  "
        f"epsilon={cert['epsilon']:g} delta={cert['delta']:g}\n"
        f"distance to coupled retrain: no unlearning {dist['no_unlearning']:.3g}, "
        f"HF-OCU (noiseless) {dist['hfocu_noiseless']:.3g}\n"
        f"test accuracy: trained {acc['trained']['test']:.3f}, retrained {acc['retrained']['test']:.3f}, "
        f"unlearned noiseless {acc['unlearned_noiseless']['test']:.3f}, released {acc['released']['test']:.3f}\n"
        f"summary written to {path}"
    )


def _parse_grid(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
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
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a summary.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal).")] = None,
) -> None:
    """How many deletions a model absorbs: proven (excess-risk bound) and empirical (accuracy vs retrain)."""
    from certunlearn.capacity_job import CapacitySpec, run_capacity

    spec = CapacitySpec(
        dataset=dataset, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        clip_norm=clip_norm, epsilon=epsilon, delta=delta, risk_tolerance=risk_tolerance,
        accuracy_tolerance=accuracy_tolerance, m_max=m_max, grid=_parse_grid(grid), repeats=repeats,
        seed=seed,
    )
    with progress_bar(progress) as bar:
        out = run_capacity(spec, progress=bar)
    if json_output:
        emit_json(out)
        return
    proven, empirical = out["proven"], out["empirical"]
    lines = [
        f"proven deletion capacity: {proven['capacity']} (expected excess risk <= {spec.risk_tolerance:g} "
        f"at epsilon={epsilon:g}, delta={delta:g}; d={out['data']['parameters']})",
    ]
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""Reproduce the HF-OCU rebuttal row "Wine (5%)" from an audit plan (``audits/hfocu_wine.toml``).

For every seed of the plan: load and split the data, build the MLP, train with ``HFOCU.fit``
(training + recording the statistics; timed = precompute), forget a random 5% of the training ids in
one request (timed = deletion), replay the coupled retrain without them (``full_batch`` and
``remaining`` normalisation), and measure

* ‖w̄ − w_retrain‖₂ over all parameters (w̄ = the noiseless unlearned model),
* ‖w − w_retrain‖₂ (no unlearning: how far the trained model is from the retrain),
* deletion seconds, precompute seconds (fit; and training alone, to isolate the recording),
* storage bytes of the statistics, test accuracy of w, w̄ and w_retrain.

Prints mean ± std (population std, ``numpy.std``) beside the published values as a Markdown table,
then one row per seed. ``--json`` writes everything.

Example::

    python benchmarks/reproduce_hfocu_wine.py audits/hfocu_wine.toml
    python benchmarks/reproduce_hfocu_wine.py audits/hfocu_wine.toml --output softmax --seeds 42,124
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine_info, sync, timed  # noqa: E402

from certunlearn.data import load_dataset  # noqa: E402
from certunlearn.models import MLP  # noqa: E402
from certunlearn.train import SGDConfig, coupled_retrain, train_sgd  # noqa: E402
from certunlearn.train.sgd import StepInfo  # noqa: E402
from certunlearn.unlearn import HFOCU  # noqa: E402

PLAN_SCHEMA = {
    "": {"schema_version", "name", "claim", "kind", "runner", "source", "data", "model", "training",
         "deletion", "seeds", "published"},
    "source": {"paper", "code"},
    "data": {"name", "test_fraction", "standardize", "dtype", "n_train"},
    "model": {"name", "hidden", "activation", "output"},
    "training": {"epochs", "batch_size", "lr", "lr_decay", "weight_decay", "clip_norm", "projection_radius"},
    "deletion": {"fraction", "retrain_normalization"},
    "seeds": {"values"},
    "published": {"distance_mean", "distance_std", "deletion_seconds", "storage_mb", "precompute_seconds",
                  "hardware"},
}
REQUIRED = {"schema_version", "data", "model", "training", "deletion", "seeds"}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_plan(path: Path) -> dict[str, Any]:
    """Read and check the TOML plan: unknown keys and missing sections are refused by name."""
    with open(path, "rb") as fh:
        plan = tomllib.load(fh)
    unknown = sorted(set(plan) - PLAN_SCHEMA[""])
    missing = sorted(REQUIRED - set(plan))
    if unknown or missing:
        raise SystemExit(f"{path}: unknown keys {unknown}, missing keys {missing}")
    if plan["schema_version"] != 1:
        raise SystemExit(f"{path}: unsupported schema_version {plan['schema_version']!r} (expected 1)")
    for section, allowed in PLAN_SCHEMA.items():
        if section and section in plan:
            extra = sorted(set(plan[section]) - allowed)
            if extra:
                raise SystemExit(f"{path}: unknown keys in [{section}]: {extra}; allowed: {sorted(allowed)}")
    if plan["model"].get("name", "mlp") != "mlp":
        raise SystemExit(f"{path}: only model.name = 'mlp' is supported, got {plan['model']['name']!r}")
    if plan["model"].get("output", "logits") not in ("logits", "softmax"):
        raise SystemExit(f"{path}: model.output must be 'logits' or 'softmax'")
    if plan["data"].get("dtype", "float32") not in DTYPES:
        raise SystemExit(f"{path}: data.dtype must be one of {sorted(DTYPES)}")
    return plan


class SoftmaxOutput(nn.Module):
    """The authors' MLP ends in ``nn.Softmax``; cross-entropy then applies log-softmax a second time."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.body(x), dim=1)


class ClipCounter:
    """Training observer: how many steps had ‖g_t‖ above the clipping norm."""

    def __init__(self, clip_norm: float | None) -> None:
        self.clip_norm = clip_norm
        self.clipped = 0
        self.max_norm = 0.0

    def on_step(self, info: StepInfo) -> None:
        norm = float(torch.linalg.vector_norm(info.grad))
        self.max_norm = max(self.max_norm, norm)
        if self.clip_norm is not None and norm > self.clip_norm:
            self.clipped += 1


def build_model(plan: dict[str, Any], num_features: int, num_classes: int, seed: int,
                dtype: torch.dtype, output: str) -> nn.Module:
    m = plan["model"]
    body = MLP(num_features, num_classes, hidden=tuple(m.get("hidden", [64])),
               activation=m.get("activation", "relu"), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return SoftmaxOutput(body) if output == "softmax" else body


def flat(state: dict[str, Tensor], names: tuple[str, ...]) -> Tensor:
    return torch.cat([state[k].reshape(-1).to(torch.float64) for k in names])


def accuracy(hf: HFOCU, theta: Tensor, X: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((hf.fm_.outputs(theta, X).argmax(dim=1) == y).double().mean())


def run_seed(plan: dict[str, Any], seed: int, device: torch.device, output: str) -> dict[str, Any]:
    d, t, dl = plan["data"], plan["training"], plan["deletion"]
    dtype = DTYPES[d.get("dtype", "float32")]
    ds = load_dataset(d.get("name", "wine"), seed=seed, test_fraction=d.get("test_fraction", 0.2),
                      standardize=d.get("standardize", True), dtype=dtype)
    if "n_train" in d and ds.n_train != d["n_train"]:
        raise SystemExit(f"expected {d['n_train']} training rows, got {ds.n_train}")
    X, y = ds.X_train.to(device), ds.y_train.to(device)
    model = build_model(plan, ds.num_features, ds.num_classes, seed, dtype, output).to(device)
    config = SGDConfig(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], lr_decay=t.get("lr_decay", 1.0),
                       weight_decay=t.get("weight_decay", 0.0), clip_norm=t.get("clip_norm"),
                       projection_radius=t.get("projection_radius"), seed=seed)

    counter = ClipCounter(config.clip_norm)
    train_s, trained = timed(lambda: train_sgd(model, X, y, config, observers=[counter]), device)
    hf = HFOCU(model, config, storage_dtype=d.get("dtype", "float32"), certificate="worst-case")  # vs the coupled retrain
    fit_s, _ = timed(lambda: hf.fit(X, y), device)
    names = hf.fm_.layout.names
    same_training = bool(torch.equal(hf.theta_, trained.theta))

    n = ds.n_train
    m = max(1, int(round(dl["fraction"] * n)))
    ids = sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=m, replace=False))
    gen = torch.Generator(device=device).manual_seed(seed)
    delete_s, res = timed(lambda: hf.forget(ids, epsilon=1.0, delta=1e-5, generator=gen), device)

    w = hf.theta_.to(torch.float64)
    w_bar = flat(res.params_noiseless, names)
    out: dict[str, Any] = {
        "seed": seed, "n_train": n, "d": hf.fm_.dim, "deleted": m, "deleted_ids": ids,
        "precompute_s": fit_s, "train_only_s": train_s, "record_only_s": fit_s - train_s,
        "deletion_s": delete_s, "deletion_elapsed_field_s": res.elapsed_s,
        "storage_bytes": hf.statistics_nbytes, "certified": res.certified, "status": res.status,
        "sigma": res.sigma, "clipped_steps": counter.clipped, "max_grad_norm": counter.max_norm,
        "steps": len(hf.schedule), "fit_reproduces_training": same_training,
        "test_acc_trained": accuracy(hf, hf.theta_, ds.X_test.to(device), ds.y_test.to(device)),
        "test_acc_unlearned": accuracy(hf, w_bar.to(dtype), ds.X_test.to(device), ds.y_test.to(device)),
    }
    primary = dl.get("retrain_normalization", "full_batch")
    for norm in ("full_batch", "remaining"):
        sync(device)
        retrained = coupled_retrain(model, X, y, hf.schedule, config, exclude=ids, normalization=norm)
        w_r = flat(retrained, names)
        out[f"dist_unlearned_{norm}"] = float(torch.linalg.vector_norm(w_bar - w_r))
        out[f"dist_trained_{norm}"] = float(torch.linalg.vector_norm(w - w_r))
        out[f"test_acc_retrain_{norm}"] = accuracy(hf, w_r.to(dtype), ds.X_test.to(device), ds.y_test.to(device))
    out["distance"] = out[f"dist_unlearned_{primary}"]
    return out


def warm_up(device: torch.device) -> None:
    """One tiny fit, so that torch.func's one-time set-up is not charged to the first seed."""
    X = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.tensor([0, 1] * 4, device=device)
    config = SGDConfig(epochs=1, batch_size=4, lr=0.1)
    HFOCU(MLP(3, 2, hidden=(4,), dtype=torch.float32).to(device), config).fit(X, y)


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def markdown(plan: dict[str, Any], rows: list[dict[str, Any]], output: str) -> str:
    pub = plan.get("published", {})
    k = len(rows)

    def ms(key: str, scale: float = 1.0, fmt: str = "{:.4f}") -> str:
        mean, std = mean_std([r[key] * scale for r in rows])
        return f"{fmt.format(mean)} ± {fmt.format(std)}"

    def pub_val(key: str, fmt: str = "{}") -> str:
        return fmt.format(pub[key]) if key in pub else "–"

    dist_pub = (f"{pub['distance_mean']} ± {pub['distance_std']}"
                if "distance_mean" in pub and "distance_std" in pub else "–")
    lines = [
        f"| quantity | published (HF) | certunlearn, mean ± std over {k} seeds |",
        "|---|---|---|",
        f"| ‖w̄ − w_retrain‖₂, retrain ÷ \\|B_t\\| (paper eq. 5) | {dist_pub} | {ms('dist_unlearned_full_batch')} |",
        f"| ‖w̄ − w_retrain‖₂, retrain ÷ \\|B_t \\ U\\| (authors' retrain code) | – | "
        f"{ms('dist_unlearned_remaining')} |",
        f"| ‖w − w_retrain‖₂ (no unlearning), ÷ \\|B_t\\| | – | {ms('dist_trained_full_batch')} |",
        f"| ‖w − w_retrain‖₂ (no unlearning), ÷ \\|B_t \\ U\\| | – | {ms('dist_trained_remaining')} |",
        f"| deletion time (s), one request of {rows[0]['deleted']} ids | {pub_val('deletion_seconds')} | "
        f"{ms('deletion_s', fmt='{:.5f}')} |",
        f"| storage of the statistics (MB = 1e6 B) | {pub_val('storage_mb')} | "
        f"{ms('storage_bytes', 1e-6, '{:.3f}')} |",
        f"| precompute (s): HFOCU.fit = training + recording | {pub_val('precompute_seconds')} | "
        f"{ms('precompute_s', fmt='{:.2f}')} |",
        f"| … of which training alone (s) | – | {ms('train_only_s', fmt='{:.3f}')} |",
        f"| test accuracy: trained / unlearned / retrained (÷ \\|B_t\\|) | – | "
        f"{ms('test_acc_trained', fmt='{:.3f}')} / {ms('test_acc_unlearned', fmt='{:.3f}')} / "
        f"{ms('test_acc_retrain_full_batch', fmt='{:.3f}')} |",
    ]
    lines += [
        "",
        f"model output: {output}; n = {rows[0]['n_train']}, d = {rows[0]['d']}, T = {rows[0]['steps']} steps, "
        f"{rows[0]['deleted']} ids deleted per seed; release status: {rows[0]['status']} (σ = {rows[0]['sigma']:g}); "
        f"steps with ‖g_t‖ > clip: {sum(r['clipped_steps'] for r in rows)} "
        f"(max ‖g_t‖ {max(r['max_grad_norm'] for r in rows):.3f}); "
        f"HFOCU.fit reproduces train_sgd bit for bit: {all(r['fit_reproduces_training'] for r in rows)}",
        "",
        "| seed | ‖w̄ − w_r‖ ÷\\|B\\| | ‖w̄ − w_r‖ ÷\\|B∖U\\| | ‖w − w_r‖ ÷\\|B\\| | ‖w − w_r‖ ÷\\|B∖U\\| "
        "| deletion (ms) | fit (s) | train (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['dist_unlearned_full_batch']:.4f} | {r['dist_unlearned_remaining']:.4f} | "
            f"{r['dist_trained_full_batch']:.4f} | {r['dist_trained_remaining']:.4f} | "
            f"{1e3 * r['deletion_s']:.3f} | {r['precompute_s']:.2f} | {r['train_only_s']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", type=Path, nargs="?", default=Path("audits/hfocu_wine.toml"))
    parser.add_argument("--seeds", default=None, help="comma-separated subset of the plan's seeds")
    parser.add_argument("--output", choices=("logits", "softmax"), default=None,
                        help="override model.output of the plan")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    plan = load_plan(args.plan)
    device = torch.device(args.device)
    seeds = [int(s) for s in plan["seeds"]["values"]]
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
    output = args.output or plan["model"].get("output", "logits")
    warm_up(device)
    rows = []
    for seed in seeds:
        row = run_seed(plan, seed, device, output)
        print(f"seed {seed}: ||w_bar - w_r|| = {row['distance']:.4f}, ||w - w_r|| = "
              f"{row['dist_trained_full_batch']:.4f}, fit {row['precompute_s']:.2f} s, "
              f"delete {1e3 * row['deletion_s']:.3f} ms", flush=True)
        rows.append(row)
    table = markdown(plan, rows, output)
    print()
    print(table)
    emit({"plan": str(args.plan), "name": plan.get("name"), "output": output, "machine": machine_info(device),
          "published": plan.get("published", {}), "seeds": rows, "markdown": table}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

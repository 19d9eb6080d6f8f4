"""The CureNewton evaluation script runs end to end on its smoke plan and refuses bad options.

Not a timing test: it checks that the script the docs quote still works, that every method ran, and
properties the evaluation relies on (accepted CureNewton steps never raise the retained loss; the
reference retrain converged; verdicts are reported for every target).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_curenewton.py"


@pytest.fixture(scope="module")
def evaluation():
    spec = importlib.util.spec_from_file_location("eval_curenewton_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_quick_run_on_a_held_out_seed(evaluation, tmp_path, capsys) -> None:
    out = tmp_path / "cn.json"
    assert evaluation.main(["--quick", "--quiet", "--seeds", "4", "--threads", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--seeds 4" in printed and "## Summary of targets" in printed
    results = json.loads(out.read_text())
    assert results["plan"]["deletion"]["seeds"] == [4]
    (task,) = results["tasks"]
    (config,) = task["configs"]
    (run,) = config["runs"]
    assert run["seed"] == 4
    labels = {m["label"] for m in results["plan"]["methods"]}
    assert {"curenewton", "curenewton-fast", "damped-newton"} <= labels
    for label, agg in config["aggregate"].items():
        assert not agg.get("errors"), (label, agg.get("errors"))
    for label in ("curenewton", "curenewton-fast"):
        row = run["rows"][label]
        assert row["accepted_steps"] >= 1
        assert row["retained_loss"] <= run["retained_loss_before"] * (1 + 1e-12)
        for trial in row["history"]:  # the acceptance rule: actual change ≤ the model's prediction ≤ 0
            if trial["accepted"]:
                assert trial["actual_change"] <= trial["predicted_change"] + 1e-12 * max(1.0, row["retained_loss"])
                assert trial["predicted_change"] <= 0
    targets = {v["target"] for v in results["verdicts"] if v["kind"] == "target"}
    assert any("speed-up" in t for t in targets) and any("forget acc closer" in t for t in targets)
    avoids = [v for v in results["verdicts"] if v["target"].startswith("curenewton avoids the blow-up")]
    assert len(avoids) == 1 and avoids[0]["met"] is True, avoids

@pytest.mark.parametrize("seeds", ["", "x", "1,1", "-1", "2,,2"])
def test_bad_seeds_are_refused(evaluation, seeds, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        evaluation.main(["--quick", "--quiet", "--seeds", seeds])
    assert err.value.code == 2
    assert "--seeds" in capsys.readouterr().err

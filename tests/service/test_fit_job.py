"""certunlearn.jobs.fit: FitSpec (validated, from TOML) and run_fit (train, then create the state)."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_helpers import snapshot, write_data

from certunlearn.errors import ConfigError, InputError
from certunlearn.jobs.fit import FitSpec, run_fit
from certunlearn.service import DeletionService


def test_run_fit_on_a_file_creates_a_state_that_serves_requests(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data.npz", n=150)
    spec = FitSpec(data=str(data), epochs=3, batch_size=16, track_fraction=0.5,
                   policy={"epsilon": 2.0, "delta": 1e-5, "max_releases": 3})
    with run_fit(spec, tmp_path / "state") as service:
        tracked = service.unlearner.tracked_ids
        assert len(tracked) == 60 and service.state.tracked == 60  # ceil(0.5 * 120 training rows)
        out = service.forget("r1", [int(tracked[0])], epsilon=1.0, delta=1e-5)
        assert out.summary["certified"] is True
    with DeletionService.open(tmp_path / "state") as service:
        status = service.status()
        report = service.report("r1")
    assert status["budget"]["releases_left"] == 2 and status["request_defaults"] == {"epsilon": 1.0, "delta": 1e-5}
    assert status["data"]["source"] == str(data.resolve()) and status["model"]["args"]["in_features"] == 4
    assert report["verdict"]["status"] == "PASS"


def test_run_fit_with_a_module_factory_and_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_data(tmp_path / "data.npz")
    monkeypatch.chdir(tmp_path)
    spec = FitSpec(data="data.npz", model="certunlearn.models:LogisticRegression", epochs=1, batch_size=32,
                   model_args={"in_features": 4, "num_classes": 3, "dtype": "float64"}, certificate="worst-case")
    with run_fit(spec, "state") as service:
        assert service.state.data.source == str(tmp_path / "data.npz")
        assert service.state.certificate["certificate"] == "worst-case"


def test_run_fit_checks_the_state_directory_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from certunlearn.unlearn import HFOCU

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking the state directory")

    monkeypatch.setattr(HFOCU, "fit", no_training)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    before = snapshot(tmp_path / "full")
    with pytest.raises(InputError, match="non-empty directory"):
        run_fit(FitSpec(data="wine"), tmp_path / "full")
    assert snapshot(tmp_path / "full") == before


def test_a_missing_data_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        run_fit(FitSpec(data=str(tmp_path / "absent.npz")), tmp_path / "state")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("options", "match"), [
    (dict(data="mnist"), "unknown dataset 'mnist'"),
    (dict(data=""), "data must be a dataset name"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(lr=-1.0), "lr"),
    (dict(clip_norm=0.0), "clip_norm"),
    (dict(test_fraction=1.0), r"test_fraction must be in \[0, 1\)"),
    (dict(track_fraction=1.5), r"track_fraction must be in \(0, 1\]"),
    (dict(certificate="best"), "certificate"),
    (dict(storage_dtype="int8"), "storage_dtype"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(delta=1.0), "delta"),
    (dict(model=""), "model name"),
    (dict(model_args={"hidden": object()}), "model args.hidden must be a JSON value"),
    (dict(policy={"epsilon": 1.0, "delta": 1e-5, "max_release": 3}), r"unknown policy keys \['max_release'\]"),
    (dict(policy={"epsilon": 1.0}), "invalid policy"),
    (dict(standardize="yes"), "standardize"),
])
def test_fit_spec_validation(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FitSpec(**{"data": "wine", **options})


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "fit.toml"
    path.write_text('data = "wine"\nepochs = 3\ntrack_fraction = 0.25\n[model_args]\ndtype = "float64"\n'
                    '[policy]\nepsilon = 1.0\ndelta = 1e-5\nmax_deletions = 10\n')
    spec = FitSpec.from_toml(path)
    assert spec.epochs == 3 and spec.model_args == {"dtype": "float64"} and spec.policy.max_deletions == 10
    assert FitSpec.from_toml(path, epochs=5).epochs == 5
    path.write_text('data = "wine"\nepochs = "3"\n')
    with pytest.raises(ConfigError, match="fit.toml: epochs"):
        FitSpec.from_toml(path)
    path.write_text('data = "wine"\nepochs = \n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        FitSpec.from_toml(path)
    path.write_text('data = "wine"\n[training]\nepochs = 3\n')
    with pytest.raises(ConfigError, match=r"unknown keys \['training'\]"):
        FitSpec.from_toml(path)
    with pytest.raises(InputError, match="cannot read the fit config"):
        FitSpec.from_toml(tmp_path / "absent.toml")

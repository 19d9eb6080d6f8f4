"""The one digest module: each rule against an independent hashlib/struct computation, order
properties (hypothesis), and the lineage property the module exists for — a compliance report's
released-parameters digest is the ledger event's ``model_after`` for the same release."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from certunlearn.certify.ledger import Ledger, LedgerPolicy
from certunlearn.digest import (
    array_digest,
    canonical_json,
    config_digest,
    data_digest,
    ids_digest,
    json_digest,
    row_digests,
)
from certunlearn.errors import ConfigError
from certunlearn.models import MLP, LogisticRegression
from certunlearn.report.build import build_report
from certunlearn.train.config import SGDConfig
from certunlearn.unlearn.hfocu import HFOCU


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _float64_bytes(values: list[float]) -> bytes:
    return b"".join(struct.pack("<d", float(v)) for v in values)


# ----------------------------------------------------------------------------------------- rules


@given(st.sets(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40), st.randoms())
@settings(max_examples=50, deadline=None)
def test_ids_digest_is_the_sorted_comma_text_in_any_order(ids: set[int], rnd) -> None:
    order = list(ids)
    rnd.shuffle(order)
    expected = _sha(",".join(str(i) for i in sorted(ids)).encode())
    assert ids_digest(order) == ids_digest(np.array(order, dtype=np.int64)) == expected


def test_ids_digest_text_ids_and_errors() -> None:
    assert ids_digest(["b", "a"]) == _sha(b"a\nb")
    assert ids_digest([1, 2]) != ids_digest([1, 3])
    assert ids_digest([True]) == _sha(b"True")  # booleans are not integer ids
    with pytest.raises(ConfigError, match="empty"):
        ids_digest([])


def test_array_digest_is_float64_bytes_in_layout_order() -> None:
    weight, bias = [[1.5, -2.0], [0.25, 3.0]], [0.5, -0.125]
    flat = [1.5, -2.0, 0.25, 3.0, 0.5, -0.125]
    expected = _sha(_float64_bytes(flat))
    assert array_digest({"weight": weight, "bias": bias}) == expected
    assert array_digest(np.array(flat, dtype=np.float32)) == expected  # exact in float32
    assert array_digest(torch.tensor(flat, dtype=torch.bfloat16)) == expected  # and in bfloat16
    assert array_digest({"bias": bias, "weight": weight}) != expected  # order is part of the digest
    with pytest.raises(ConfigError, match="empty"):
        array_digest({})
    with pytest.raises(ConfigError, match="not numeric"):
        array_digest(np.array(["a"]))


@pytest.mark.parametrize("module", [LogisticRegression(5, 3), MLP(4, 3, hidden=(6, 5))], ids=["logreg", "mlp"])
def test_state_dict_and_flat_parameters_share_one_digest(module: torch.nn.Module) -> None:
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    assert array_digest(dict(module.state_dict())) == array_digest(flat)
    assert array_digest(flat) == _sha(flat.double().numpy().tobytes())


def test_data_and_row_digests() -> None:
    X = np.array([[1.0, -0.0], [2.0, 3.0]])
    y = np.array([0, 1])
    header = json.dumps({"X": [2, 2], "y": [2]}, sort_keys=True, separators=(",", ":")).encode()
    body = _float64_bytes([1.0, 0.0, 2.0, 3.0]) + struct.pack("<qq", 0, 1)
    assert data_digest(X, y) == _sha(header + body)
    assert data_digest(torch.tensor(X, dtype=torch.float32), torch.tensor(y)) == data_digest(X, y)
    rows = row_digests(X, y)
    first = hashlib.blake2b(_float64_bytes([1.0, 0.0]), digest_size=16)
    first.update(struct.pack("<q", 0))
    assert rows.shape == (2, 16) and rows.dtype == np.uint8
    assert rows[0].tobytes() == first.digest()
    with pytest.raises(ConfigError, match=r"\[n\]"):
        data_digest(X, y[:1])
    with pytest.raises(ConfigError, match="integer"):
        data_digest(X, y.astype(float))


def test_canonical_json_and_config_digest() -> None:
    assert canonical_json({"é": 1, "a": [True, None]}) == '{"a":[true,null],"é":1}'.encode()
    assert json_digest({"b": 1, "a": 2}) == _sha(b'{"a":2,"b":1}')
    with pytest.raises(ConfigError, match="canonical JSON"):
        canonical_json({"x": float("nan")})
    config = {"lr": np.float64(0.5), "steps": (1, 2), "loss": object}
    assert config_digest(config) == _sha(
        json.dumps({"loss": str(object), "lr": 0.5, "steps": [1, 2]}, sort_keys=True, separators=(",", ":")).encode()
    )
    assert config_digest({"x": float("nan")}) == _sha(b'{"x":NaN}')  # still digestible


# ---------------------------------------------------------------------------------------- lineage


def test_report_released_digest_equals_the_ledger_model_after() -> None:
    """One HF-OCU release with a ledger: the report built from the result names the same weights."""
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=generator, dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True).clamp_min(1.0)
    y = (X[:, 0] > 0).long()
    module = LogisticRegression(4, 2).double()
    ledger = Ledger(LedgerPolicy(epsilon=2.0, delta=1e-5))
    config = SGDConfig(epochs=2, batch_size=20, lr=0.1, weight_decay=0.01, seed=0)
    hf = HFOCU(module, config, feature_norm_bound=1.0, ledger=ledger).fit(X, y)
    result = hf.forget([3, 7], epsilon=1.0, delta=1e-5, request_id="req-1")
    event = ledger.events[-1]
    report = build_report(
        request={"request_id": "req-1", "ids": [3, 7]},
        lineage={"original_params": hf.params, "released_params": result.params_released},
        certificate=result, utility={"released": {"test": 0.9}, "retrained": {"test": 0.9}}, policy=None,
    )
    assert report["lineage"]["released_params_sha256"] == event.model_after
    assert report["request"]["forget_set"]["ids_sha256"] == event.ids_digest
    deployed = LogisticRegression(4, 2).double()
    deployed.load_state_dict(result.params_released)
    assert array_digest(dict(deployed.state_dict())) == event.model_after  # a user's copy of the weights

"""The state directory of one model: its layout, ``state.json``, release files and integrity checks.

Layout (names in :data:`LAYOUT`)::

    state.json        what the state is (StateFile): format "certunlearn.state", state_schema_version,
                      kind "hfocu", model spec, data reference with its digest, SGD config,
                      certificate settings, policy, request defaults, and the manifest (size + SHA-256)
                      of every file under hfocu/
    hfocu/            HFOCU.save output, written once at creation: weights, schedule, statistics, anchor
    weights/          (kind "posthoc" instead of hfocu/) trained.pt, the trained weights, written once;
                      state.json then also records the method and its options, and the manifest is of weights/
    ledger.sqlite     the ledger (certunlearn.service.ledger_db): the source of truth for what happened;
                      absent when state.json's ledger_url names a PostgreSQL ledger instead
    releases/         <model_after digest>.pt: the released state dict of each committed request
    state.lock        the exclusive lock (fcntl.flock) that serialises writers

Nothing but the ledger (one transaction) and one new file in ``releases/`` (written atomically
before that transaction) changes per request. A state is created complete in a temporary sibling
directory and renamed into place (:func:`build_state_dir`), so a crash during creation leaves no
half state at the target.

Example:
    >>> ModelSpec("logreg", {"in_features": 3, "num_classes": 2}).build().linear.weight.shape
    torch.Size([2, 3])
    >>> DataRef("wine", {"seed": 0, "clip_norm": 1.0}).load().n_train
    143
    >>> StateFile.from_dict({"format": "something else"}, where="x")
    Traceback (most recent call last):
    ...
    certunlearn.errors.StateError: x: not a certunlearn state (format 'something else', expected 'certunlearn.state')
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certunlearn.certify.ledger import LedgerPolicy
from certunlearn.errors import ConfigError, InputError, StateError
from certunlearn.service.files import file_record, fsync_dir, fsync_file, sha256_file, write_atomic
from certunlearn.service.sql import check_ledger_url
from certunlearn.validation import check_int, check_open_unit, check_positive

if TYPE_CHECKING:
    from torch import Tensor, nn

    from certunlearn.data import Dataset

__all__ = [
    "LAYOUT",
    "STATE_FORMAT",
    "STATE_SCHEMA_VERSION",
    "DataRef",
    "IntegrityReport",
    "KINDS",
    "ModelSpec",
    "StateFile",
    "build_state_dir",
    "manifest",
    "manifest_problems",
    "orphan_releases",
    "policy_from",
    "policy_problems",
    "read_release",
    "read_state",
    "release_problems",
    "write_release",
]

STATE_FORMAT = "certunlearn.state"
"""``state.json``'s ``format``."""

STATE_SCHEMA_VERSION = 1
"""``state.json``'s ``state_schema_version``: a newer one is refused, never rewritten."""

LAYOUT = {"state": "state.json", "hfocu": "hfocu", "ledger": "ledger.sqlite", "releases": "releases",
          "lock": "state.lock", "weights": "weights"}
"""The names inside a state directory (``weights/``: a post-hoc state's copy of the trained weights)."""

KINDS = ("hfocu", "posthoc")
"""State kinds: ``hfocu`` (HF-OCU statistics under ``hfocu/``) and ``posthoc`` (a post-hoc method's
trained weights under ``weights/``, its method and options in ``state.json``)."""

_JSON = (str, int, float, bool, type(None))


def _check_json(name: str, value: object) -> None:
    """Refuse values that do not survive a JSON round trip (keys must be strings)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{name} keys must be strings, got {key!r}")
            _check_json(f"{name}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _check_json(f"{name}[{k}]", item)
    elif not isinstance(value, _JSON):
        raise ConfigError(f"{name} must be a JSON value (str, number, bool, list, table), got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to build the model's architecture again: a zoo name or ``"module:factory"`` and its arguments.

    Attributes:
        name: Registered model name (``logreg``, ``mlp``, ``cnn``) or ``"package.module:factory"``.
        args: JSON keyword arguments of the factory; ``dtype`` is a torch dtype name (``"float64"``).
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"model name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.args, Mapping):
            raise ConfigError(f"model args must be a mapping, got {type(self.args).__name__}")
        _check_json("model args", self.args)

    def build(self) -> nn.Module:
        """A fresh module of this architecture (its weights are replaced when a state is opened)."""
        import torch

        from certunlearn.models import build_model

        kwargs = dict(self.args)
        if "dtype" in kwargs:
            dtype = getattr(torch, str(kwargs["dtype"]), None)
            if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
                raise ConfigError(f"model dtype must be a floating torch dtype name, got {kwargs['dtype']!r}")
            kwargs["dtype"] = dtype
        try:
            return build_model(self.name, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"cannot build model {self.name!r} with {dict(self.args)}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "args"}`` (JSON)."""
        return {"name": self.name, "args": json.loads(json.dumps(dict(self.args)))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        _exact_keys("model", data, ("name", "args"))
        return cls(data["name"], data["args"])


_DATA_OPTIONS = ("seed", "clip_norm", "test_fraction", "standardize")


@dataclass(frozen=True, slots=True)
class DataRef:
    """Where the training data comes from, and its digest.

    The rows are :func:`certunlearn.data.load_dataset` ``(source, **options)``'s training split (sample
    id = row), so the state can load them again; ``data_digest`` is
    :func:`certunlearn.digest.data_digest` of those rows, checked every time the state is opened.

    Attributes:
        source: An embedded dataset name (``digits``, ``wine``, ``breast_cancer``) or the absolute path
            of a ``.npz`` / ``.pt`` file.
        options: ``seed``, ``clip_norm``, ``test_fraction``, ``standardize`` (load_dataset's defaults
            for the ones left out).
        data_digest: The digest recorded when the state was created (None before).
    """

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    data_digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"data source must be a non-empty string, got {self.source!r}")
        if Path(self.source).suffix in (".npz", ".pt") and not os.path.isabs(self.source):
            raise ConfigError(f"data file {self.source!r} must be an absolute path (the state may be opened "
                              "from another working directory)")
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"data options must be a mapping, got {type(self.options).__name__}")
        unknown = sorted(set(self.options) - set(_DATA_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown data options {unknown}: allowed {list(_DATA_OPTIONS)}")
        opts = self.options
        if "seed" in opts:
            check_int("seed", opts["seed"], minimum=0)
        if opts.get("clip_norm") is not None:
            check_positive("clip_norm", opts["clip_norm"])
        if "standardize" in opts and not isinstance(opts["standardize"], bool):
            raise ConfigError(f"standardize must be true or false, got {opts['standardize']!r}")
        if self.data_digest is not None and (not isinstance(self.data_digest, str) or len(self.data_digest) != 64):
            raise ConfigError(f"data_digest must be 64 hex characters, got {self.data_digest!r}")

    def load(self) -> Dataset:
        """The dataset (train split = the training rows)."""
        from certunlearn.data import load_dataset

        return load_dataset(self.source, **dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "options", "data_digest"}`` (JSON)."""
        return {"source": self.source, "options": dict(self.options), "data_digest": self.data_digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataRef:
        """Inverse of :meth:`to_dict` (``data_digest`` optional); unknown keys are refused."""
        _exact_keys("data", data, ("source", "options"), optional=("data_digest",))
        return cls(data["source"], data["options"], data.get("data_digest"))


def _exact_keys(what: str, data: object, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(required) - set(optional))
    missing = sorted(set(required) - set(data))
    if unknown or missing:
        raise ConfigError(f"{what}: unknown keys {unknown}, missing keys {missing}")


def policy_from(value: LedgerPolicy | Mapping[str, Any] | None) -> LedgerPolicy | None:
    """A :class:`~certunlearn.certify.ledger.LedgerPolicy` from itself, its fields as a mapping, or None."""
    if value is None or isinstance(value, LedgerPolicy):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"policy must be a LedgerPolicy, a mapping or None, got {type(value).__name__}")
    unknown = sorted(set(value) - set(LedgerPolicy.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown policy keys {unknown}: allowed {sorted(LedgerPolicy.__dataclass_fields__)}")
    try:
        return LedgerPolicy(**value)
    except TypeError as exc:
        raise ConfigError(f"invalid policy: {exc}") from exc


def policy_problems(policy: LedgerPolicy, *, releases: int, deletions: int, count: int, sensitivity: float | None,
                    certified: bool, epsilon: float, delta: float) -> list[str]:
    """Why ``policy`` refuses a request of ``count`` ids after ``releases`` releases and ``deletions``
    deletions (the rules of :meth:`certunlearn.certify.ledger.Ledger.check`); empty when it allows it.

    Example:
        >>> p = LedgerPolicy(epsilon=1.0, delta=1e-5, max_releases=2)
        >>> policy_problems(p, releases=2, deletions=5, count=1, sensitivity=None, certified=True,
        ...                 epsilon=2.0, delta=1e-5)
        ['release 3 would exceed max_releases=2', "epsilon 2 is above the policy's 1"]
    """
    problems = []
    if policy.max_deletions is not None and deletions + count > policy.max_deletions:
        problems.append(f"{deletions + count} cumulative deletions would exceed max_deletions={policy.max_deletions}")
    if policy.max_releases is not None and releases + 1 > policy.max_releases:
        problems.append(f"release {releases + 1} would exceed max_releases={policy.max_releases}")
    if policy.max_sensitivity is not None and sensitivity is not None and sensitivity > policy.max_sensitivity:
        problems.append(f"sensitivity {sensitivity:.6g} would exceed max_sensitivity={policy.max_sensitivity:g}")
    if policy.require_certified and not certified:
        problems.append("the release is not certified and the policy requires certified releases")
    if epsilon > policy.epsilon:
        problems.append(f"epsilon {epsilon:g} is above the policy's {policy.epsilon:g}")
    if delta > policy.delta:
        problems.append(f"delta {delta:g} is above the policy's {policy.delta:g}")
    return problems


def check_request_defaults(value: Mapping[str, Any] | None) -> dict[str, float] | None:
    """``{"epsilon", "delta"}`` of later requests (validated), or None."""
    if value is None:
        return None
    _exact_keys("request_defaults", value, ("epsilon", "delta"))
    return {"epsilon": check_positive("epsilon", value["epsilon"]), "delta": check_open_unit("delta", value["delta"])}


_STATE_KEYS = ("format", "state_schema_version", "kind", "state_id", "created_at", "certunlearn_version", "model",
               "data", "sgd", "certificate", "policy", "request_defaults", "trained_params", "n_samples", "tracked",
               "files")
_OPTIONAL_STATE_KEYS = ("ledger_url",)  # written only when set: an SQLite state's state.json is unchanged
_POSTHOC_KEYS = ("method", "options")  # a post-hoc state's method and its constructor options


@dataclass(frozen=True, slots=True)
class StateFile:
    """The content of ``state.json`` (see the module docstring).

    Attributes:
        state_id: Random identifier, also written into the ledger's ``meta`` (a foreign ledger is refused).
        created_at: UTC creation time.
        certunlearn_version: Version that created the state.
        model: How to build the architecture.
        data: Where the training rows come from, with their digest.
        sgd: The SGD configuration (:meth:`~certunlearn.train.SGDConfig.to_dict`).
        certificate: The certificate settings (resolved ``certificate``, ``sensitivity_budget``,
            ``feature_norm_bound``, ``calibration``, ``risk_tolerance``, ``noise_sensitivity``).
        policy: The ledger policy, or None (no limits).
        request_defaults: ``{"epsilon", "delta"}`` suggested for requests, or None.
        trained_params: Digest of the trained parameters w_T (the first release's ``model_before``).
        n_samples: Training rows.
        tracked: Rows whose statistics were recorded (the ids that can be deleted).
        files: Manifest ``{relative path: {"bytes", "sha256"}}`` of ``hfocu/``.
        ledger_url: The ``postgresql://`` URL of the database holding the ledger (never a password:
            :func:`~certunlearn.service.sql.check_ledger_url`), or None: ``ledger.sqlite`` in the directory.
        kind: ``hfocu`` or ``posthoc`` (:data:`KINDS`).
        method: A post-hoc state's method name (:func:`~certunlearn.unlearn.get_unlearner`); None for HF-OCU.
        options: A post-hoc state's constructor options of the method (JSON); None for HF-OCU.
    """

    state_id: str
    created_at: str
    certunlearn_version: str
    model: ModelSpec
    data: DataRef
    sgd: Mapping[str, Any]
    certificate: Mapping[str, Any]
    policy: LedgerPolicy | None
    request_defaults: Mapping[str, float] | None
    trained_params: str
    n_samples: int
    tracked: int
    files: Mapping[str, Mapping[str, Any]]
    ledger_url: str | None = None
    kind: str = "hfocu"
    method: str | None = None
    options: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``state.json``."""
        optional: dict[str, Any] = {} if self.ledger_url is None else {"ledger_url": self.ledger_url}
        if self.kind == "posthoc":
            optional.update(method=self.method, options=dict(self.options or {}))
        return {
            "format": STATE_FORMAT, "state_schema_version": STATE_SCHEMA_VERSION, "kind": self.kind,
            "state_id": self.state_id, "created_at": self.created_at, "certunlearn_version": self.certunlearn_version,
            "model": self.model.to_dict(), "data": self.data.to_dict(), "sgd": dict(self.sgd),
            "certificate": dict(self.certificate), "policy": None if self.policy is None else asdict(self.policy),
            "request_defaults": None if self.request_defaults is None else dict(self.request_defaults),
            "trained_params": self.trained_params, "n_samples": self.n_samples, "tracked": self.tracked,
            "files": {k: dict(v) for k, v in self.files.items()}, **optional,
        }

    @classmethod
    def from_dict(cls, data: object, *, where: str) -> StateFile:
        """Validate ``state.json``'s object (``where`` names the file in messages).

        Raises:
            StateError: Not a certunlearn state, a newer schema, another kind, unknown or missing keys,
                or an invalid value.
        """
        if not isinstance(data, dict):
            raise StateError(f"{where}: state.json must hold a JSON object, got {type(data).__name__}")
        if data.get("format") != STATE_FORMAT:
            raise StateError(f"{where}: not a certunlearn state (format {data.get('format')!r}, "
                             f"expected {STATE_FORMAT!r})")
        version = data.get("state_schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StateError(f"{where}: invalid state_schema_version {version!r}")
        if version > STATE_SCHEMA_VERSION:
            raise StateError(f"{where}: state schema version {version} is newer than this certunlearn's "
                             f"{STATE_SCHEMA_VERSION}: upgrade certunlearn to open it")
        kind = data.get("kind")
        if kind not in KINDS:
            raise StateError(f"{where}: unsupported state kind {kind!r} (this version serves {list(KINDS)})")
        required = _STATE_KEYS + (_POSTHOC_KEYS if kind == "posthoc" else ())
        unknown = sorted(set(data) - set(required) - set(_OPTIONAL_STATE_KEYS))
        missing = sorted(set(required) - set(data))
        if unknown or missing:
            raise StateError(f"{where}: unknown keys {unknown}, missing keys {missing}")
        try:
            state = cls(
                state_id=_text("state_id", data["state_id"]), created_at=_text("created_at", data["created_at"]),
                certunlearn_version=_text("certunlearn_version", data["certunlearn_version"]),
                model=ModelSpec.from_dict(data["model"]), data=DataRef.from_dict(data["data"]),
                sgd=_mapping("sgd", data["sgd"]), certificate=_mapping("certificate", data["certificate"]),
                policy=policy_from(data["policy"]), request_defaults=check_request_defaults(data["request_defaults"]),
                trained_params=_text("trained_params", data["trained_params"]),
                n_samples=check_int("n_samples", data["n_samples"], minimum=1),
                tracked=check_int("tracked", data["tracked"], minimum=1), files=_manifest_of(data["files"]),
                ledger_url=None if data.get("ledger_url") is None else check_ledger_url(data["ledger_url"]),
                kind=kind, method=_text("method", data["method"]) if kind == "posthoc" else None,
                options=_mapping("options", data["options"]) if kind == "posthoc" else None)
        except (ConfigError, TypeError) as exc:
            raise StateError(f"{where}: invalid state.json ({exc})") from exc
        if state.data.data_digest is None:
            raise StateError(f"{where}: the data reference has no data_digest")
        return state


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _mapping(name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _manifest_of(value: object) -> dict[str, dict[str, Any]]:
    files = _mapping("files", value)
    for name, record in files.items():
        if not isinstance(record, dict) or set(record) != {"bytes", "sha256"}:
            raise ConfigError(f"files[{name!r}] must be {{'bytes', 'sha256'}}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ConfigError(f"files[{name!r}] must be a path inside the state directory")
    if not files:
        raise ConfigError("files (the manifest of hfocu/) is empty")
    return files


def read_state(root: Path) -> StateFile:
    """Read and validate ``root/state.json``.

    Raises:
        StateError: ``root`` is not a directory, ``state.json`` is missing, truncated, not JSON, or invalid.
    """
    if not root.is_dir():
        raise StateError(f"{root}: no such state directory")
    path = root / LAYOUT["state"]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{path}: truncated or not JSON ({exc})") from exc
    return StateFile.from_dict(data, where=str(path))


# ---------------------------------------------------------------------------------- files
def manifest(root: Path, *, under: str = LAYOUT["hfocu"]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``root/under`` (``hfocu/``, or a
    post-hoc state's ``weights/``)."""
    base = root / under
    return {path.relative_to(root).as_posix(): file_record(path)
            for path in sorted(base.rglob("*")) if path.is_file()}


def manifest_problems(root: Path, files: Mapping[str, Mapping[str, Any]], *, deep: bool = True) -> list[str]:
    """The manifest's files that are missing, resized or (``deep``) altered."""
    problems = []
    for name, record in files.items():
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing (recorded in state.json)")
        elif path.stat().st_size != record["bytes"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, state.json recorded {record['bytes']} (truncated "
                            "or replaced)")
        elif deep and sha256_file(path) != record["sha256"]:
            problems.append(f"{name}: content does not match its SHA-256 in state.json (altered)")
    return problems


def release_name(digest: str) -> str:
    """File name of the release whose released parameters have ``digest``."""
    return f"{digest}.pt"


def write_release(root: Path, digest: str, params: Mapping[str, Tensor]) -> Path:
    """Write ``releases/<digest>.pt`` atomically (temporary name, fsync, rename, directory fsync)."""
    import torch

    path = root / LAYOUT["releases"] / release_name(digest)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in params.items()}
    write_atomic(path, lambda handle: torch.save(state, handle))
    return path


def read_release(path: Path) -> dict[str, Tensor]:
    """A release file's state dict (``weights_only``).

    Raises:
        StateError: Missing, truncated or not a dict of tensors.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, truncated or not a weights-only file
        raise StateError(f"{path}: unreadable release file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StateError(f"{path}: a release file must hold a state dict of tensors")
    return state


def release_problems(root: Path, files: Mapping[str, str], *, deep: bool = True) -> list[str]:
    """Committed releases whose file is missing, misnamed or (``deep``) does not hash to its ``model_after``."""
    from certunlearn.digest import array_digest

    problems = []
    for name, digest in sorted(files.items()):
        path = root / LAYOUT["releases"] / name
        if name != release_name(digest):
            problems.append(f"releases/{name}: the ledger names it for another digest ({digest})")
        elif not path.is_file():
            problems.append(f"releases/{name}: missing (committed in the ledger)")
        elif deep:
            try:
                if array_digest(read_release(path)) != digest:
                    problems.append(f"releases/{name}: its parameters do not hash to the ledger's model_after (altered)")
            except StateError as exc:
                problems.append(f"releases/{name}: {exc}")
    return problems


def orphan_releases(root: Path, referenced: set[str]) -> list[str]:
    """Names in ``releases/`` that no committed row refers to (releases whose commit never happened,
    temporary files of interrupted writes)."""
    base = root / LAYOUT["releases"]
    return sorted(p.name for p in base.iterdir() if p.name not in referenced)


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """What a state's integrity check found.

    Attributes:
        problems: What is wrong (empty: the state is sound).
        removed_orphans: Release files without a committed row that the check removed.
    """

    problems: tuple[str, ...] = ()
    removed_orphans: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problems."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """``{"ok", "problems", "removed_orphans"}``."""
        return {"ok": self.ok, "problems": list(self.problems), "removed_orphans": list(self.removed_orphans)}


# ---------------------------------------------------------------------------------- creation
def check_new_state_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a state can be created there (absent, or an empty directory).

    Raises:
        InputError: ``path`` is a file, a non-empty directory, or lies under a file.
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise InputError(f"state {str(root)!r} is a file, not a directory")
    if root.is_dir() and any(root.iterdir()):
        raise InputError(f"state {str(root)!r} is a non-empty directory: choose a new or empty directory")
    parent = root.parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"state {str(root)!r}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"state {str(root)!r}: {str(parent)!r} is not writable")
    return root


def new_state_id() -> str:
    """A random state identifier."""
    return uuid.uuid4().hex


def build_state_dir(path: str | os.PathLike[str], write: Callable[[Path], StateFile]) -> Path:
    """Create a complete state at ``path``: ``write(tmp)`` fills a temporary sibling directory (everything
    but ``state.json``, which is written here last), every file and directory is fsynced, then the
    directory is renamed to ``path`` (atomic; an empty directory there is replaced).

    Raises:
        InputError: See :func:`check_new_state_path`; on any error nothing is left at ``path``.
    """
    root = check_new_state_path(path)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.creating-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        (tmp / LAYOUT["releases"]).mkdir()
        (tmp / LAYOUT["lock"]).touch()
        state = write(tmp)
        write_atomic(tmp / LAYOUT["state"], lambda h: h.write(json.dumps(state.to_dict(), indent=2,
                                                                           sort_keys=True).encode()))
        for directory, _, names in os.walk(tmp):
            for name in names:
                fsync_file(Path(directory) / name)
            fsync_dir(directory)
        try:
            os.rename(tmp, root)
        except OSError as exc:
            raise InputError(f"state {str(root)!r} cannot be created ({exc.strerror or exc}): another process "
                             "may have created it meanwhile") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root.parent)
    return root

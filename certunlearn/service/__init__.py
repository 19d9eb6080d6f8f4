"""The durable deletion service: one state directory per model, its ledger, crash-safe requests.

* :mod:`certunlearn.service.deletion_service` — :class:`DeletionService` (``create`` / ``open`` /
  ``forget`` / ``status`` / ``record`` / ``report`` / ``check``) and :class:`ForgetOutcome`;
* :mod:`certunlearn.service.state` — the directory layout, ``state.json`` (:class:`StateFile`,
  :class:`ModelSpec`, :class:`DataRef`), release files, integrity checks;
* :mod:`certunlearn.service.ledger_db` — the ledger (tables, schema version, migration rule);
* :mod:`certunlearn.service.sql` — the one SQL layer under it: an SQLite file or a PostgreSQL schema;
* :mod:`certunlearn.service.locks` — the state lock: a file lock (one host) or a PostgreSQL advisory lock;
* :mod:`certunlearn.service.loading` — checking and loading a state's unlearner and data;
* :mod:`certunlearn.service.views` — the status dict and the compliance report of a request;
* :mod:`certunlearn.service.files` — atomic writes and fsyncs.

docs/service.md describes the design. The service imports neither ``certunlearn.jobs`` nor the CLI.

Example:
    >>> from certunlearn.service import DeletionService, ForgetOutcome
    >>> callable(DeletionService.open) and ForgetOutcome.__dataclass_params__.frozen
    True
"""

from certunlearn.service.deletion_service import FAULT_DELAY_ENV, DeletionService, ForgetOutcome
from certunlearn.service.ledger_db import LEDGER_DB_SCHEMA_VERSION, LedgerDB
from certunlearn.service.state import (
    STATE_FORMAT,
    STATE_SCHEMA_VERSION,
    DataRef,
    IntegrityReport,
    ModelSpec,
    StateFile,
)

__all__ = [
    "FAULT_DELAY_ENV",
    "LEDGER_DB_SCHEMA_VERSION",
    "STATE_FORMAT",
    "STATE_SCHEMA_VERSION",
    "DataRef",
    "DeletionService",
    "ForgetOutcome",
    "IntegrityReport",
    "LedgerDB",
    "ModelSpec",
    "StateFile",
]

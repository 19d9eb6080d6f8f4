"""A process that serves requests on a state directory, for the service tests (run as a script).

Commands (each prints one JSON document on stdout):

* ``forget ROOT REQUEST_ID SEED ID [ID ...]`` — open the state, execute one seeded request.
* ``serve ROOT PREFIX START STEP COUNT`` — open the state once, execute COUNT single-id requests
  ``PREFIX-k`` for ids ``START + k·STEP`` (secure noise).
* ``fitcrash DIR ROUNDS DATA`` — the kill -9 loop of ``fit``: each round forks a child that runs
  :func:`certunlearn.jobs.fit.run_fit` on DATA into ``DIR/state-<round>`` and kills it at a random
  point of the fit (calibrated on one complete fit first); then the state is absent or complete
  (it opens and passes its deep integrity check), and fitting into the same path again succeeds.
* ``crash ROOT ROUNDS DELAY`` — the kill -9 loop: each round forks a child that opens the state and
  executes request ``c<round>`` (ids ``[round]``) with the fault-delay hook set to DELAY seconds, kills
  it with SIGKILL at a random point, then forks a verifier that reopens the state, checks that it is
  exactly before or after the request, completes it if needed and checks that a rerun is ``repeated``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from typing import Any


def _forget(root: str, request_id: str, seed: str, ids: list[str]) -> dict[str, Any]:
    from certunlearn.service import DeletionService

    with DeletionService.open(root) as service:
        out = service.forget(request_id, [int(i) for i in ids], epsilon=1.0, delta=1e-5,
                             insecure_noise_seed=int(seed))
        return {**out.as_dict(), "sum_a": service.unlearner.sum_a_.tolist()}


def _serve(root: str, prefix: str, start: str, step: str, count: str) -> list[dict[str, Any]]:
    from certunlearn.service import DeletionService

    outcomes = []
    with DeletionService.open(root) as service:
        for k in range(int(count)):
            out = service.forget(f"{prefix}-{k}", [int(start) + k * int(step)], epsilon=1.0, delta=1e-5)
            outcomes.append({"request_id": out.request_id, "seq": out.seq, "model_after": out.model_after,
                             "cumulative": out.summary["cumulative_deletions"]})
    return outcomes


def _verify(root: str, round_: int) -> dict[str, Any]:
    """Reopen after a kill: exactly before or after request c<round>; then complete it once."""
    from certunlearn.service import DeletionService

    request_id, ids = f"c{round_}", [round_]
    with DeletionService.open(root) as service:
        removed = list(service.integrity_at_open.removed_orphans)
        status = service.status(deep=True)
        committed = service._db.request(request_id) is not None
        releases = status["releases"]
        expected = round_ + 1 if committed else round_
        deleted = sorted(service.unlearner.deleted_ids)
        exact = (status["integrity"] == "ok" and releases == expected and deleted == list(range(expected))
                 and status["cumulative_deletions"] == expected)
        first = service.forget(request_id, ids, epsilon=1.0, delta=1e-5).status
        again = service.forget(request_id, ids, epsilon=1.0, delta=1e-5).status
        after = service.status(deep=True)
    return {"round": round_, "committed": committed, "exact": exact, "removed": removed, "first": first,
            "again": again, "releases_after": after["releases"], "integrity_after": after["integrity"]}


def _child(run: Any, *args: Any) -> None:
    """Run ``run(*args)`` in a forked child and leave with its status (never returns)."""
    code = 0
    try:
        run(*args)
    except BaseException as exc:  # noqa: BLE001 (reported through the exit code)
        print(f"child failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 3
    os._exit(code)


def _request(root: str, round_: int, ready_fd: int) -> None:
    """The killed child: open the state, say so, serve request c<round>, then wait to be killed."""
    from certunlearn.service import DeletionService

    try:
        with DeletionService.open(root) as service:
            os.write(ready_fd, b"o")  # opened: the request path starts now
            service.forget(f"c{round_}", [round_], epsilon=1.0, delta=1e-5)
            time.sleep(1.0)  # still alive when the kill comes: a kill after the commit
    finally:
        os.close(ready_fd)


def _report(root: str, round_: int, out_fd: int) -> None:
    """The verifier child: write :func:`_verify`'s JSON to ``out_fd``."""
    try:
        os.write(out_fd, json.dumps(_verify(root, round_)).encode())
    finally:
        os.close(out_fd)


def _crash(root: str, rounds: str, delay: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # no thread pool before fork
    import certunlearn.accounting  # noqa: F401  (opacus, imported once here, not in every forked child)
    from certunlearn.service.deletion_service import FAULT_DELAY_ENV

    rng = random.Random(1234)
    results, started = [], time.monotonic()
    for round_ in range(int(rounds)):
        read_fd, write_fd = os.pipe()
        os.environ[FAULT_DELAY_ENV] = delay
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(_request, root, round_, write_fd)
        os.close(write_fd)
        os.environ.pop(FAULT_DELAY_ENV)
        if round_ % 5 == 0:  # kill anywhere, opening included
            time.sleep(rng.uniform(0.0, 0.06))
        else:  # kill inside the request path
            os.read(read_fd, 1)
            time.sleep(rng.uniform(0.0, 5 * float(delay)))
        os.close(read_fd)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        out_read, out_write = os.pipe()
        checker = os.fork()
        if checker == 0:
            os.close(out_read)
            _child(_report, root, round_, out_write)
        os.close(out_write)
        with os.fdopen(out_read, "rb") as handle:
            text = handle.read()
        _, code = os.waitpid(checker, 0)
        verdict = json.loads(text) if text else {"round": round_, "exact": False, "error": code}
        verdict["killed"] = os.WIFSIGNALED(status)
        results.append(verdict)
    return {"seconds": time.monotonic() - started, "rounds": results}


def _fit_child(spec: Any, target: str) -> None:
    from certunlearn.jobs.fit import run_fit

    run_fit(spec, target).close()
    time.sleep(1.0)  # still alive when the kill comes: a kill after the state was created


def _fitcrash(directory: str, rounds: str, data: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # no thread pool before fork
    import certunlearn.accounting  # noqa: F401  (opacus, imported once here)
    from certunlearn.jobs.fit import FitSpec, run_fit
    from certunlearn.service import DeletionService

    spec = FitSpec(data=data, epochs=2, batch_size=16)
    started = time.monotonic()
    run_fit(spec, os.path.join(directory, "calibration")).close()
    span = time.monotonic() - started
    rng = random.Random(4321)
    results = []
    for round_ in range(int(rounds)):
        target = os.path.join(directory, f"state-{round_}")
        pid = os.fork()
        if pid == 0:
            _child(_fit_child, spec, target)
        time.sleep(rng.uniform(0.0, 1.2 * span))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        exists = os.path.exists(target)
        opened = None
        if exists:
            with DeletionService.open(target) as service:
                opened = service.status(deep=True)["integrity"]
        else:
            run_fit(spec, target).close()  # the path is free again: the next fit succeeds
            with DeletionService.open(target) as service:
                opened = "refit: " + str(service.status(deep=True)["integrity"])
        results.append({"round": round_, "killed": os.WIFSIGNALED(status), "created": exists, "integrity": opened})
    return {"fit_seconds": span, "rounds": results}


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "forget":
        out: Any = _forget(args[0], args[1], args[2], args[3:])
    elif command == "serve":
        out = _serve(*args)
    elif command == "fitcrash":
        out = _fitcrash(*args)
    elif command == "crash":
        out = _crash(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])

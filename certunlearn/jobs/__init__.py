"""The application layer: the only code that reads users' files and writes outputs.

Each job takes a frozen, validated spec and returns JSON-ready results (and writes files where it
says so); the CLI (:mod:`certunlearn.cli`) parses options into a spec and calls one job. The
libraries below (``certify``, ``autodiff``, ``train``, ``unlearn``, ``audit``, ``report``) never
read a user's file or write an output.

* :mod:`certunlearn.jobs.setup` — the shared set-up: clipped data, softmax regression, HF-OCU.
* :mod:`certunlearn.jobs.user_files` — a user's model (zoo name or ``module:factory``), weights and data.
* :mod:`certunlearn.jobs.demo` — ``certunlearn demo``.
* :mod:`certunlearn.jobs.capacity` — ``certunlearn capacity`` (proven and empirical capacity).
* :mod:`certunlearn.jobs.forget` — ``certunlearn forget`` on a user's trained model.
* :mod:`certunlearn.jobs.fit` — ``certunlearn fit``: train with statistics, create a state directory
  (:mod:`certunlearn.service` serves its requests).
* :mod:`certunlearn.jobs.plan`, :mod:`certunlearn.jobs.plan_run` — audit plans and running them.
* :mod:`certunlearn.jobs.mia_jobs` — ``certunlearn audit mia-l | mia-u`` on a user's files.
* :mod:`certunlearn.jobs.outputs` — output locations checked first, files written atomically.

Example:
    >>> from certunlearn.jobs.capacity import CapacitySpec
    >>> CapacitySpec(dataset="wine").certificate
    'refine'
"""

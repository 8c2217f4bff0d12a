"""Warm execution: flow runs forked from a process that has already imported Prefect and
Dealflow's flows, instead of a fresh interpreter per run (docs/deployment.md).

``launch`` is the work pool's command (stdlib only, so that it starts in milliseconds);
``parent`` is the warm parent it asks for a run; ``supervisor`` is ``dealflow worker``,
which keeps a warm parent beside a Prefect worker."""

"""What the tests and the benchmarks share, so that neither imports the other.

- ``harness.mail``: Dealflow's emails as the people who get them use them: whose a
  message is, its text, the approval, signing or acceptance link it carries, the
  decision posted at that link, and the signed contract recorded from the sales rep's
  email (``sign_from_email``).
- ``harness.runs``: a flow run's state as Prefect reports it, waiting for a state, and
  the processes on this machine that still hold a run.
- ``harness.ports``: a free TCP port on this machine.
- ``harness.history``: a made-up but plausible history of many deals, written straight
  into Dealflow's tables.

Not part of the installed product: imported from the checkout, like ``tests`` and
``bench``. Importing ``harness.mail``, ``harness.runs`` or ``harness.ports`` imports
neither Prefect nor Dealflow (``harness.runs`` imports Prefect when called), so that
the tests' conftest.py and the benchmarks can set the stack's environment first.
"""

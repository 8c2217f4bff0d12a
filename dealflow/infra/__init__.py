"""Plumbing every room uses: the database and migrations, the clock, rendering,
the Prefect API, signed links and the proof an answer carries, and a deal's records.
Imports models only."""

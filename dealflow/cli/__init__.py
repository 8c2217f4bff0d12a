"""The ``dealflow`` command and its sub-commands."""

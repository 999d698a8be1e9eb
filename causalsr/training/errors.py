"""The training package's one user-facing error."""
from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot continue; the message is one line for the user."""

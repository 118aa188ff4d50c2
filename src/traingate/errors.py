"""The one base class of every error traingate raises on purpose.

``except TraingateError`` catches a user mistake (bad contract, bad run dir, bad data) and
lets a bug through; the CLI turns one into a one-line message and a non-zero exit.
"""

from __future__ import annotations


class TraingateError(Exception):
    """Base of traingate's own errors: a located, user-facing problem, never a bug."""

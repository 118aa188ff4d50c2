"""The one way a command reports a user mistake: one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    """Print ``prog: message`` to stderr and exit with ``code`` (2: bad usage or input)."""
    click.echo(f"{prog}: {message}", err=True)
    sys.exit(code)

"""The one way a command reports a user mistake (one line on stderr and exit status 2), and
the command group both CLIs use (Ctrl-C exits 130)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    """Print ``prog: message`` to stderr and exit with ``code`` (2: bad usage or input)."""
    click.echo(f"{prog}: {message}", err=True)
    sys.exit(code)


class InterruptibleGroup(click.Group):
    """A command group whose Ctrl-C exits 130 (128 + SIGINT), as a shell expects, instead of
    click's ``Aborted!`` and exit 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            import signal  # only here: start-up does not pay for its enum of every signal

            click.echo("\ninterrupted", err=True)
            sys.exit(128 + signal.SIGINT)

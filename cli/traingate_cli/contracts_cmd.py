"""``contracts``: validate, list, show and verify traingate contracts; gate and audit runs.

The one place the ``contracts`` group is defined: each command lives in its own module
(which imports only :mod:`traingate_cli.common` and :mod:`traingate_cli.usage`) and is
attached here. Exit codes: 0 clean, 1 findings (or undischarged ship-blocking gates),
2 usage or unreadable input, 130 interrupted (Ctrl-C). Validating never imports torch: it
starts fast.
"""

from __future__ import annotations

import click

from traingate_cli.common import PROG
from traingate_cli.decide_cmd import decide
from traingate_cli.inspect_cmds import codes, list_cmd, validate
from traingate_cli.run_cmds import audit, check, report
from traingate_cli.show_cmd import show
from traingate_cli.usage import InterruptibleGroup
from traingate_cli.verify_cmd import verify


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traingate")
def cli() -> None:
    """Validate, inspect and verify traingate contracts."""


for command in (validate, list_cmd, show, verify, codes, check, audit, report, decide):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point (``contracts = traingate_cli.contracts_cmd:main``)."""
    cli(prog_name=PROG)


if __name__ == "__main__":
    main()

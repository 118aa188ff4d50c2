"""``contracts``: validate, list, show, verify and import contracts; gate and audit runs.

The one place the ``contracts`` group is defined: each command lives in its own module
(which imports only :mod:`traingate_cli.common` and :mod:`traingate_cli.usage`) and is
attached here by name, its module imported only when that command runs (or when ``--help``
lists it). Exit codes: 0 clean, 1 findings (or undischarged ship-blocking gates), 2 usage or
unreadable input, 130 interrupted (Ctrl-C). Validating never imports torch, the runtime or
the audit machinery: it starts fast.
"""

from __future__ import annotations

import gc
import importlib

import click

from traingate_cli.usage import InterruptibleGroup

PROG = "contracts"  # == traingate_cli.common.PROG (not imported: it loads the contract layer)

# command name → (module, attribute); ``--help`` lists them sorted, as click does
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("traingate_cli.inspect_cmds", "validate"),
    "list": ("traingate_cli.inspect_cmds", "list_cmd"),
    "show": ("traingate_cli.show_cmd", "show"),
    "verify": ("traingate_cli.verify_cmd", "verify"),
    "codes": ("traingate_cli.inspect_cmds", "codes"),
    "check": ("traingate_cli.run_cmds", "check"),
    "audit": ("traingate_cli.run_cmds", "audit"),
    "report": ("traingate_cli.run_cmds", "report"),
    "decide": ("traingate_cli.decide_cmd", "decide"),
    "import": ("traingate_cli.import_cmd", "import_cmd"),
}


_gc_held = False  # True while main() holds the garbage collector off for start-up


def _settle_start_up() -> None:
    """End main()'s start-up: move every object made so far (modules, the ~40 pydantic
    schemas: ~30,000 objects that live until exit) out of the collector's generations, so
    no later collection, nor the one at exit, walks them again, and collect normally again.

    The cycles start-up dropped are frozen too (a few hundred objects, ~0.35 MB), held
    until exit: less than a ``gc.collect()`` here costs (~10 ms). A command module that
    imported torch or pyarrow at its top would make that far more: they import in the
    command's body, after this."""
    global _gc_held
    if _gc_held:
        _gc_held = False
        gc.freeze()
        gc.enable()


class LazyGroup(InterruptibleGroup):
    """A group whose commands are imported by name, on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
            _settle_start_up()
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traingate")
def cli() -> None:
    """Validate, inspect and verify traingate contracts."""


def main() -> None:
    """Console-script entry point (``contracts = traingate_cli.contracts_cmd:main``).

    Start-up allocates objects that nearly all live until exit (modules, pydantic schemas),
    so collecting while it runs frees next to nothing: the collector is off until the
    command's module is imported, then frozen (see _settle_start_up). That saves ~30 ms of
    a 200 ms ``contracts validate``.
    """
    global _gc_held
    if gc.isenabled():
        gc.disable()
        _gc_held = True
    try:
        cli(prog_name=PROG)
    finally:
        if _gc_held:  # no command was imported (--version, a typo)
            _gc_held = False
            gc.enable()


if __name__ == "__main__":
    main()

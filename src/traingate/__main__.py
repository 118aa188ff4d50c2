"""``python -m traingate``: the ``contracts`` command line (validate, list, show, verify, …).

Starts as fast as ``contracts`` does: nothing here or in ``contracts validate`` imports torch.
"""

from __future__ import annotations

from traingate_cli.contracts_cmd import cli


def main() -> None:
    """Run ``contracts`` under the name ``python -m traingate``."""
    cli(prog_name="python -m traingate")


if __name__ == "__main__":
    main()

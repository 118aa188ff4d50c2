"""Mutation testing of falsifiers: ``contracts verify --mutants``.

A falsifier that passes whatever the threshold is locks nothing. For each contract this
makes small mutants, of the contract (:mod:`.contract_gen`: formula constants nudged,
operators and comparisons swapped, plain numeric params nudged) and of the decision code its
invariants run (:mod:`.code_gen`: comparisons swapped in the check module's functions), and
requires at least one of the contract's falsifiers to fail on each (:mod:`.running`). A
mutant that survives is a finding (:mod:`.results`).

Each mutant first runs in a long-lived worker process (:mod:`.inprocess`, fed by
:mod:`.pool`): installed there, run against only the falsifiers that cover what it changed
with ``pytest.main`` in-process, then undone. A kill there is final; any other mutant runs
again the old way (:mod:`.fresh`), in its own copy of the project's ``contracts/`` and
``falsifiers/`` (``TRAINGATE_SHIPPED_ROOT`` points the falsifiers at the copy) and its own
pytest process, where :mod:`traingate.ci.mutant_plugin` installs a code mutant before the
falsifiers import it, and that run's verdict is the one reported.
"""

from pathlib import Path

import traingate.errors

# the folder holding the ``traingate`` package: a mutant's pytest imports traingate from it
PACKAGE_PARENT = Path(traingate.errors.__file__).resolve().parents[1]

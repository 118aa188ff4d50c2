"""pytest plugin for ``contracts verify --mutants``: a fast Hypothesis profile, and a mutant.

At configure time (before any falsifier is imported) it loads a derandomized, no-shrink
Hypothesis profile and, when ``TRAINGATE_MUTANT_MODULE`` / ``TRAINGATE_MUTANT_SOURCE`` name
a module and a file of mutated source, installs that source under the module's real name.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

PROFILE = "traingate-mutants"


def install_module(name: str, source: str, filename: str) -> types.ModuleType:
    """Execute ``source`` as module ``name``, replacing the imported one everywhere it is found.

    Check kinds the old module registered are dropped from the registry first, so the
    mutant's ``@register`` installs its own classes.
    """
    import traingate.checks  # noqa: F401  (imports every kind module: replace after it)
    from traingate.checks.base import REGISTRY

    for kind, cls in list(REGISTRY.items()):
        if cls.__module__ == name:
            del REGISTRY[kind]
    package, _, short = name.rpartition(".")
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__package__ = package
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    if package in sys.modules:
        setattr(sys.modules[package], short, module)
    return module


def pytest_configure(config: Any) -> None:
    """Load the fast Hypothesis profile and install the mutant, before any falsifier imports."""
    del config
    from hypothesis import Phase, settings

    settings.register_profile(
        PROFILE,
        max_examples=int(os.environ.get("TRAINGATE_MUTANT_EXAMPLES", "25")),
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )
    settings.load_profile(PROFILE)
    name = os.environ.get("TRAINGATE_MUTANT_MODULE")
    path = os.environ.get("TRAINGATE_MUTANT_SOURCE")
    if name and path:
        install_module(name, Path(path).read_text(encoding="utf-8"), path)

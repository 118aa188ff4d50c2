"""pytest plugin used by ``contracts verify``: record each test's outcome to a JSON file."""

from __future__ import annotations

import json
import os
from typing import Any

_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: Any) -> None:
    nodeid = report.nodeid
    if report.failed:
        _OUTCOMES[nodeid] = "failed"
    elif report.skipped:
        _OUTCOMES.setdefault(nodeid, "skipped")
    elif report.when == "call":
        _OUTCOMES.setdefault(nodeid, "passed")


def pytest_sessionfinish(session: Any) -> None:
    target = os.environ.get("TRAINGATE_OUTCOMES")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump(_OUTCOMES, fh)

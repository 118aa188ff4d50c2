"""pytest plugin used by ``contracts verify``: record each test's outcome to a JSON file.

The file holds ``{"outcomes": {nodeid: outcome}, "collection_errors": {nodeid: text}}``:
a file that fails to collect (an import error, a syntax error) keeps pytest's error text.
"""

from __future__ import annotations

import json
import os
from typing import Any

_OUTCOMES: dict[str, str] = {}
_COLLECTION_ERRORS: dict[str, str] = {}


def pytest_runtest_logreport(report: Any) -> None:
    """Record a test's outcome: a failure in any phase wins, then skipped, then passed."""
    nodeid = report.nodeid
    if report.failed:
        _OUTCOMES[nodeid] = "failed"
    elif report.skipped:
        _OUTCOMES.setdefault(nodeid, "skipped")
    elif report.when == "call":
        _OUTCOMES.setdefault(nodeid, "passed")


def pytest_collectreport(report: Any) -> None:
    """Record a node that failed to collect, with pytest's error text."""
    if report.failed:
        _COLLECTION_ERRORS[report.nodeid or "."] = report.longreprtext


def pytest_sessionfinish(session: Any) -> None:
    """Write every recorded outcome to the file ``TRAINGATE_OUTCOMES`` names."""
    target = os.environ.get("TRAINGATE_OUTCOMES")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump({"outcomes": _OUTCOMES, "collection_errors": _COLLECTION_ERRORS}, fh)

"""Replay an existing metrics log through the Guard, as if the run had been guarded.

The log is CSV/TSV, JSON lines, or parquet, one row per step or per epoch (or both kinds
in one file); see :mod:`.tables` (reading), :mod:`.mapping` (columns → observations, and
what must be mapped), :mod:`.rows` (which rows feed which point) and :mod:`.replay`.
"""

from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.mapping import parse_mapping, parse_where
from traingate.ci.audit.replay import Audited, audit_metrics

__all__ = ["AuditError", "Audited", "audit_metrics", "parse_mapping", "parse_where"]

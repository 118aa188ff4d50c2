"""Replay an existing metrics log through the Guard, as if the run had been guarded.

The log is CSV/TSV, JSON lines, parquet, a TensorBoard or MLflow run, a Hugging Face
``trainer_state.json`` or a Lightning ``metrics.csv``, one row per step or per epoch (or
both); see :mod:`.tables` (reading), :mod:`.mapping` (columns → observations, and what must
be mapped), :mod:`.rows` (which rows feed which point), :mod:`.replay` and :mod:`.auditlog`.
"""

from traingate.ci.audit.auditlog import audit_metrics
from traingate.ci.audit.errors import AuditError
from traingate.ci.audit.mapping import parse_mapping
from traingate.ci.audit.replay import Audited

__all__ = ["AuditError", "Audited", "audit_metrics", "parse_mapping"]

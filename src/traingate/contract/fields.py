"""Field types every contract model shares: the strict base, non-empty text, test ids.

The contract schema and the decision rules it embeds are both written with these, so a
test id or a title is checked the same way wherever it appears.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

TEST_ID = r"^[\w./-]+\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]]*\])?$"

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
TestId = Annotated[str, StringConstraints(pattern=TEST_ID)]


class Strict(BaseModel):
    """Base for every contract model: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

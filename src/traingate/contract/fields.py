"""Field types every contract model shares: the strict base, non-empty text, test ids.

The contract schema and the decision rules it embeds are both written with these, so a
test id or a title is checked the same way wherever it appears.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic_core import CoreSchema, core_schema

TEST_ID = r"^[\w./-]+\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]]*\])?$"

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
TestId = Annotated[str, StringConstraints(pattern=TEST_ID)]


class Strict(BaseModel):
    """Base for every contract model: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Opaque:
    """``Annotated`` metadata for a parsed value pydantic should not look inside (a formula's
    tree): validated by ``validate``, serialised by ``serialize``, described by ``json``.

    Its core schema is built once and shared by every field that uses it; a
    ``PlainValidator`` would still have pydantic generate, then discard, a schema of the
    annotated type for each field (42 formula trees when the checks are imported).
    """

    def __init__(
        self,
        validate: Callable[[Any], Any],
        serialize: Callable[[Any], Any],
        json: dict[str, Any],
    ) -> None:
        self._core = core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(serialize),
        )
        self._json = json

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return {**self._core}  # type: ignore[return-value]  # a fresh top level per field

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self._json)

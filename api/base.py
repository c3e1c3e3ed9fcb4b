"""Shared model configuration: camelCase on the wire (as Kubernetes). Input (resources,
requests) refuses unknown fields; records we write ourselves ignore them."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, snake_case attributes, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
        use_enum_values=False,
    )

    def dump(self) -> dict[str, object]:
        """The wire form: camelCase keys, JSON-compatible values."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Record(ApiModel):
    """What the platform writes and reads back later (status, workflow memory, observations,
    repair records, agent reports): a field a newer or older version no longer knows is
    ignored, so recorded histories still replay and agents of another version still report."""

    model_config = ConfigDict(extra="ignore")


class OpenAPI:
    """JSON Schema keywords for the CRDs only (`Annotated[str, validator, OpenAPI({...})]`):
    the API server checks them before the watcher sees an object; pydantic's validation is
    left as it is, so the keywords must accept what the validator accepts (tests compare
    them). Use RE2 syntax in patterns (no lookarounds, `[0-9]` rather than `\\d`)."""

    def __init__(self, keywords: JsonDict) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema.update(self.keywords)
        return schema


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns1123_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


DNS1123Label = Annotated[
    str,
    AfterValidator(_dns1123_label),
    OpenAPI({"pattern": _DNS1123_LABEL.pattern, "maxLength": 63}),
]

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
_UNITS = {
    None: 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def quantity_bytes(value: str) -> int:
    """Bytes in a Kubernetes quantity such as '128Mi' or '1G'."""
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a size: use a number with an optional unit "
            "(Ki, Mi, Gi, Ti, K, M, G, T), e.g. '128Mi'"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _quantity(value: str) -> str:
    quantity_bytes(value)
    return value


# At most 32 characters in the CRD (the validator has no limit: longer is only leading zeros or
# digits of a size no volume has), which also bounds the cost of its CEL rules.
Quantity = Annotated[
    str, AfterValidator(_quantity), OpenAPI({"pattern": _QUANTITY.pattern, "maxLength": 32})
]


def metadata_name_rule(max_length: int) -> JsonDict:
    """A CEL rule for the root of a resource's schema: its name a DNS-1123 label of at most
    `max_length` characters, as ObjectMeta (and the names made from it) need. The API server
    already makes it a DNS-1123 subdomain; a schema cannot constrain `metadata`, a root rule
    can (`self.metadata.name` is the one part of metadata CEL sees)."""
    return {
        "rule": f"self.metadata.name.size() <= {max_length} && !self.metadata.name.contains('.')",
        "message": f"metadata.name must be a DNS-1123 label (no '.') of at most {max_length} "
        "characters",
    }


class ObjectMeta(ApiModel):
    """The subset of Kubernetes object metadata mysqlops reads."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    name: DNS1123Label
    namespace: DNS1123Label = "default"
    uid: str | None = None  # set by an API server: the workflow then writes status back to it
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

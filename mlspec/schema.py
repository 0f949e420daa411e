"""The JSON Schema of mlops.yaml, generated from the models (``mlspec schema``).

The committed copy, ``schemas/mlops.schema.json``, is checked against this in tests;
editors use it through ``# yaml-language-server: $schema=…``.
"""

from __future__ import annotations

import json

from pydantic.json_schema import GenerateJsonSchema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    def generate(self, schema, mode="validation"):
        out = super().generate(schema, mode=mode)
        return {"$schema": DRAFT, **out}


def spec_schema() -> dict:
    from .models import Spec

    return Spec.model_json_schema(by_alias=True, schema_generator=_Generator)


def environment_schema(targets: list | None = None) -> dict:
    """The environment file's schema: the core fields plus each target's settings block
    (every registered target by default)."""
    from . import registry
    from .environments import model_for

    model = model_for(registry.select(None) if targets is None else targets)
    schema = model.model_json_schema(schema_generator=_Generator)
    schema["$id"] = "https://mlspec.io/schemas/environment.schema.json"
    schema["title"] = "mlspec environment (environments/<env>.yaml)"
    return schema


def dumps(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

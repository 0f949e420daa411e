"""A Markdown field reference generated from the JSON Schemas (``docs/spec.md``).

``mlspec schema --markdown`` prints it; a test fails when the committed copy is stale,
so the reference cannot drift from the models.
"""

from __future__ import annotations

import json
from typing import Any


def _type(node: dict, defs: dict) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts = [_type(n, defs) for n in node[key] if n.get("type") != "null"]
            nullable = any(n.get("type") == "null" for n in node[key])
            return " or ".join(parts) + (" (or null)" if nullable and parts else "")
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of string → {_type(extra, defs)}"
        return "mapping"
    if kind == "string" and "pattern" in node:
        return "string (pattern)"
    return str(kind or "any")


def _constraints(node: dict) -> str:
    bits = []
    for key, label in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
                       ("minItems", "items ≥"), ("minLength", "length ≥")):
        if key in node:
            bits.append(f"{label} {node[key]}")
    for sub in node.get("anyOf", []):
        bits.extend(b for b in _constraints(sub).split(", ") if b)
    return ", ".join(dict.fromkeys(bits))


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(title: str, schema: dict, defs: dict, level: str) -> list[str]:
    lines = [f"{level} {title}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    if not props:
        return lines
    lines += ["| key | type | required | default | notes |", "|---|---|---|---|---|"]
    for key, node in props.items():
        default = f"`{json.dumps(node['default'], ensure_ascii=False)}`" if "default" in node else ""
        notes = " ".join(x for x in (node.get("description", ""), _constraints(node)) if x)
        lines.append(
            f"| `{key}` | {_cell(_type(node, defs))} | {'yes' if key in required else ''} | {_cell(default)} | {_cell(notes)} |"
        )
    return lines + [""]


def markdown(spec: dict, environment: dict) -> str:
    out = [
        "# mlops.yaml reference",
        "",
        "Generated from the models by `mlspec schema --markdown`; do not edit by hand.",
        "Unknown keys are errors everywhere.",
        "",
    ]
    out += _table("Spec (top level)", spec, spec.get("$defs", {}), "##")
    for name, node in sorted(spec.get("$defs", {}).items()):
        out += _table(name, node, spec["$defs"], "###")
    out += ["# Environment file reference (environments/<env>.yaml)", ""]
    out += _table("Environment (top level)", environment, environment.get("$defs", {}), "##")
    for name, node in sorted(environment.get("$defs", {}).items()):
        out += _table(f"{name}", node, environment["$defs"], "###")
    return "\n".join(out).rstrip() + "\n"

"""The committed schemas and reference are generated from the models and must be current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlspec.reference import markdown
from mlspec.schema import dumps, environment_schema, spec_schema

ROOT = Path(__file__).resolve().parent.parent
REGEN = ".venv/bin/mlspec schema > schemas/mlops.schema.json && " \
        ".venv/bin/mlspec schema --environment > schemas/environment.schema.json && " \
        ".venv/bin/mlspec schema --markdown > docs/spec.md"
EXAMPLES = sorted(ROOT.glob("examples/*/mlops.yaml"))
ENVIRONMENTS = sorted(ROOT.glob("environments/*.yaml"))


@pytest.mark.parametrize("path, generate", [
    ("schemas/mlops.schema.json", lambda: dumps(spec_schema())),
    ("schemas/environment.schema.json", lambda: dumps(environment_schema())),
    ("docs/spec.md", lambda: markdown(spec_schema(), environment_schema())),
])
def test_committed_copy_is_current(path, generate):
    committed = (ROOT / path).read_text(encoding="utf-8")
    assert committed == generate(), f"{path} is stale; regenerate with: {REGEN}"


def test_schemas_are_valid_draft_2020_12():
    for schema in (spec_schema(), environment_schema()):
        jsonschema.Draft202012Validator.check_schema(schema)


def test_at_least_two_examples_with_different_runtimes():
    runtimes = {yaml.safe_load(p.read_text())["serving"]["runtime"] for p in EXAMPLES}
    assert len(EXAMPLES) >= 2 and len(runtimes) >= 2


@pytest.mark.parametrize("path", EXAMPLES + ENVIRONMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_point_editors_at_the_schema(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target.is_file(), f"{path} points at {target}, which does not exist"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_satisfy_the_published_schema(path):
    """An independent validator (jsonschema) accepts what our models accept."""
    schema = json.loads((ROOT / "schemas/mlops.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: p.stem)
def test_environments_satisfy_the_published_schema(path):
    schema = json.loads((ROOT / "schemas/environment.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))

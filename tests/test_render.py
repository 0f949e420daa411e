"""Tests for mlspec.render: key order, round-trips, headers, determinism."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlspec import render
from mlspec.artefact import Artefact
from mlspec.render import dump_json, dump_yaml, dump_yaml_documents, header_lines, ordered_keys, sha256_hex

PROJECT = Path(__file__).resolve().parent.parent
SHA = "ab" * 32

# ----------------------------------------------------------------------------- key order


def test_kubernetes_object_key_order() -> None:
    obj = {
        "status": {},
        "spec": {"replicas": 1},
        "data": {"b": "1", "a": "2"},
        "metadata": {
            "uid": "u", "annotations": {"z": "1"}, "labels": {"b": "1", "a": "2"}, "namespace": "ml", "name": "x"
        },
        "kind": "ConfigMap",
        "apiVersion": "v1",
    }
    assert dump_yaml(obj) == (
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: x\n"
        "  namespace: ml\n"
        "  labels:\n"
        "    a: '2'\n"
        "    b: '1'\n"
        "  annotations:\n"
        "    z: '1'\n"
        "  uid: u\n"
        "spec:\n"
        "  replicas: 1\n"
        "data:\n"
        "  a: '2'\n"
        "  b: '1'\n"
        "status: {}\n"
    )


def test_other_mappings_put_name_first_then_sort() -> None:
    containers = [{"image": "i", "name": "c", "args": ["b", "a"]}]
    text = dump_yaml({"spec": {"containers": containers}, "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert text.splitlines()[4:] == [
        "spec:", "  containers:", "  - name: c", "    args:", "    - b", "    - a", "    image: i"
    ]
    # "metadata" is only special directly inside a Kubernetes object
    assert dump_yaml({"metadata": {"labels": {}, "name": "n", "annotations": {}}}) == (
        "metadata:\n  name: n\n  annotations: {}\n  labels: {}\n"
    )


def test_ordered_keys() -> None:
    assert ordered_keys({"b": 1, "name": 1, "a": 1}) == ["name", "a", "b"]
    assert ordered_keys({"spec": 1, "x": 1, "kind": 1, "apiVersion": 1}) == ["apiVersion", "kind", "spec", "x"]
    assert ordered_keys({"kind": 1, "b": 1}) == ["b", "kind"]  # no apiVersion: not an object
    assert ordered_keys({"uid": 1, "annotations": 1, "name": 1}, metadata=True) == ["name", "annotations", "uid"]
    assert ordered_keys({10: 1, 9: 1, "10": 1, None: 1, True: 1}) == [10, "10", 9, None, True]


def test_order_does_not_depend_on_insertion_order() -> None:
    keys = [f"k{i}" for i in range(50)]
    assert dump_yaml(dict.fromkeys(keys, 1)) == dump_yaml(dict.fromkeys(reversed(keys), 1))


# ------------------------------------------------------------------------ round trips

TRICKY = [
    "on", "off", "yes", "no", "y", "n", "true", "False", "null", "Null", "~", "", " ", "1", "1.0", "-1", "+1",
    "0755", "0o755", "0x1F", "1e3", "1.5e3", "1_000", ".5", ".inf", "-.inf", ".nan", "1:30", "2024-01-01",
    "2024-01-01T10:00:00Z", "=", "<<", "- x", "-", "? x", ": x", "a: b", "a #b", "#c", "[x]", "{x}", "*a", "&a",
    "!tag", "|", ">", "%x", "@x", "`x", "'", '"', "---", "...", "a\nb", "a\nb\n", "a\nb\n\n", "\n", "\n\n", " a\nb",
    "a \nb", "a\nb ", "\ta\nb", "a\r\nb", "\x85", "\u2028", "é", "日本", "🚀 launch", "\ufeff", "\x00", "x" * 300,
]
_text = st.one_of(
    st.sampled_from(TRICKY),
    st.text(),
    st.text(alphabet=st.sampled_from("ab \n\t:#-'\"\\\r\x85\u2028é🚀0.e+_")),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text)
_keys = st.one_of(_text, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
PLAIN_DATA = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAIN_DATA)
def test_yaml_round_trip(value: object) -> None:
    assert yaml.safe_load(dump_yaml(value)) == value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PLAIN_DATA, max_size=4))
def test_yaml_documents_round_trip(values: list) -> None:
    assert list(yaml.safe_load_all(dump_yaml_documents(values))) == values


@pytest.mark.skipif(render._FastDumper is None, reason="PyYAML without libyaml")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAIN_DATA)
def test_output_does_not_depend_on_libyaml(value: object) -> None:
    """libyaml is used only where its output is byte-identical to PyYAML's own emitter."""
    plain = render.to_plain(value)
    text = dump_yaml(value)
    if render._libyaml_agrees(plain):
        options = dict(default_flow_style=False, allow_unicode=True, width=render._WIDTH, sort_keys=False)
        assert yaml.dump(plain, Dumper=render._PortableDumper, **options) == text


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_stay_strings(text: str) -> None:
    assert yaml.safe_load(dump_yaml({"v": text})) == {"v": text}
    assert yaml.safe_load(dump_yaml([text])) == [text]


@pytest.mark.parametrize("text", ["on", "no", "1.0", "0755", "2024-01-01", "null", "~", "", "1e3", "0o17"])
def test_ambiguous_strings_are_quoted(text: str) -> None:
    assert dump_yaml({"v": text}) == f"v: '{text}'\n"


@pytest.mark.parametrize(
    "number", [0.0, -0.0, 0.1, 1.5, 1e20, 1e16, 1e-7, 3.14e-300, float("inf"), float("-inf"), 2**70, -5]
)
def test_numbers_round_trip(number: float) -> None:
    assert yaml.safe_load(dump_yaml([number])) == [number]


def test_float_formatting() -> None:
    text = dump_yaml([1e20, 1e-7, 0.5, float("inf"), True, None])
    assert text == "- 1.0e+20\n- 1.0e-07\n- 0.5\n- .inf\n- true\n- null\n"


def test_block_literals() -> None:
    assert dump_yaml({"s": "a\nb"}) == "s: |-\n  a\n  b\n"
    assert dump_yaml({"s": "a\nb\n"}) == "s: |\n  a\n  b\n"
    assert dump_yaml({"s": " indented\nb\n"}) == "s: |2\n   indented\n  b\n"
    # not representable as a clean block literal: double-quoted instead
    assert dump_yaml({"s": "trailing \nspace"}) == 's: "trailing \\nspace"\n'
    assert dump_yaml({"s": "a\n\n"}) == 's: "a\\n\\n"\n'
    assert dump_yaml({"s": "tab\there\n"}) == 's: "tab\\there\\n"\n'


def test_no_anchors_no_folding_no_tags() -> None:
    shared = {"a": [1, 2]}
    long = "word " * 100 + "end"
    text = dump_yaml({"x": shared, "y": shared, "z": long})
    assert "&" not in text and "*" not in text and "!!" not in text
    assert f"z: {long}\n" in text


def test_documents() -> None:
    assert dump_yaml_documents([{"b": 1, "a": 2}, ["x"]]) == "a: 2\nb: 1\n---\n- x\n"
    assert dump_yaml_documents([]) == ""


# ----------------------------------------------------------------------------- types


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class MyList(list):
    pass


def test_subclasses_of_dict_list_str_become_plain() -> None:
    value = OrderedDict([("b", MyList([Colour.RED])), (Colour.RED, ("t", 1))])
    assert dump_yaml(value) == "b:\n- red\nred:\n- t\n- 1\n"
    assert dump_json(value) == '{\n  "b": [\n    "red"\n  ],\n  "red": [\n    "t",\n    1\n  ]\n}\n'


@pytest.mark.parametrize(
    "value, pattern",
    [
        ({"a": {1, 2}}, r"builtins\.set at \$\.a:"),
        ({"a": [b"x"]}, r"bytes at \$\.a\[0\]"),
        ([object()], r"object at \$\[0\]"),
        ({"n": Level.LOW}, r"Level at \$\.n"),
        ({(1, 2): "x"}, "mapping key of type tuple"),
        (Path("x"), "Path at"),
    ],
)
def test_non_plain_types_are_rejected(value: object, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        dump_yaml(value)
    with pytest.raises(TypeError):
        dump_json(value)


def test_cycles_are_rejected() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(TypeError, match="cyclic"):
        dump_yaml(loop)


def test_dump_json() -> None:
    assert dump_json({"b": [1, "é"], "a": None}) == '{\n  "a": null,\n  "b": [\n    1,\n    "é"\n  ]\n}\n'
    with pytest.raises(ValueError):
        dump_json([float("nan")])


# ---------------------------------------------------------------------------- render


def test_header_lines_are_static() -> None:
    # no hash and no mlspec version: a file changes only when its content does
    assert header_lines("examples/churn/mlops.yaml") == [
        "Generated by mlspec from examples/churn/mlops.yaml. DO NOT EDIT: change the spec and run `mlspec compile`.",
    ]
    with pytest.raises(ValueError):
        header_lines("evil\npath")


def _render(artefact: Artefact) -> bytes:
    return render.render(artefact, source="mlops.yaml")


HEADER = "# Generated by mlspec from mlops.yaml. DO NOT EDIT: change the spec and run `mlspec compile`.\n"


def test_render_yaml() -> None:
    assert _render(Artefact("a.yaml", {"kind": "K", "apiVersion": "v"})) == f"{HEADER}apiVersion: v\nkind: K\n".encode()
    multi = Artefact("b.yaml", [{"a": 1}, {"b": "é"}], multi_document=True)
    assert _render(multi) == f"{HEADER}a: 1\n---\nb: é\n".encode()
    assert yaml.safe_load(_render(Artefact("c.yaml", {"a": 1}))) == {"a": 1}


def test_render_text_and_json() -> None:
    assert _render(Artefact("x.py", "print(1)\r\n\n\n", kind="text")) == f"{HEADER}print(1)\n".encode()
    sql = Artefact("x.sql", "select 1;", kind="text", comment_prefix="--")
    assert _render(sql) == (HEADER.replace("# ", "-- ") + "select 1;\n").encode()
    script = Artefact("run.sh", "#!/bin/sh\necho hi\n", kind="text")
    assert _render(script) == f"#!/bin/sh\n{HEADER}echo hi\n".encode()
    assert _render(Artefact("empty.txt", "", kind="text")) == HEADER.encode()
    assert _render(Artefact("x.json", {"b": 1, "a": 2}, kind="json")) == b'{\n  "a": 2,\n  "b": 1\n}\n'
    with pytest.raises(TypeError):
        _render(Artefact("x.txt", {"not": "text"}, kind="text"))


@settings(max_examples=100, deadline=None)
@given(PLAIN_DATA)
def test_render_ends_with_exactly_one_newline(value: object) -> None:
    data = _render(Artefact("x.yaml", value))
    assert data.endswith(b"\n") and not data.endswith(b"\n\n") and b"\r" not in data


def test_sha256_hex() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


_DETERMINISM_SCRIPT = """
import sys
from mlspec.artefact import Artefact
from mlspec.render import render
names = {f"key-{i}" for i in range(500)} | {f"label.example.com/{i}" for i in range(100)}
labels = {name: str(len(name)) for name in names}  # insertion order follows the str hash
obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "m", "labels": labels},
       "data": {name: f"line 1\\nline {name}\\n" for name in names}, "list": [dict(labels), 1.5, None]}
sys.stdout.write(list(labels)[0] + "\\n")
sys.stdout.flush()
sys.stdout.buffer.write(render(Artefact("x.yaml", obj), source="s.yaml"))
"""


def test_render_is_deterministic_across_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
        done = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, capture_output=True, check=True)
        first_key, _, rendered = done.stdout.partition(b"\n")
        outputs.append((first_key, rendered))
    assert outputs[0][0] != outputs[1][0], "the seeds should give different insertion orders"
    assert outputs[0][1] == outputs[1][1] and len(outputs[0][1]) > 10_000

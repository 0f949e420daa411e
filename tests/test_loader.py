"""Bad input: every malformed, hostile or odd file gives a located SpecError, never a traceback.

Each case is checked three ways: through the loader API (``load_file`` raises one
:class:`SpecError` at the expected ``line:col``), through ``project.resolve`` (the
error is collected, nothing escapes), and through ``mlspec validate`` (exit 1, the
``file:line:col:`` in the output, no traceback).  The hostile inputs (alias bomb, deep
nesting, a 100 MB file) are also run in a real subprocess and timed.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlspec import loader
from mlspec.cli import main
from mlspec.errors import SpecError, SpecErrors
from mlspec.loader import MAX_DEPTH, MAX_NODES, load_file, load_text, resolve_plain
from mlspec.project import display_path, resolve

CORPUS = Path(__file__).resolve().parent / "corpus"
MINIMAL = (CORPUS / "valid" / "minimal.yaml").read_text(encoding="utf-8")


@dataclass
class Bad:
    id: str
    content: bytes
    line: int
    col: int
    text: str
    hint: str | None = None
    loader_error: bool = True  # raised by load_file (False: a model error, found by resolve)


def billion_laughs(levels: int = 9) -> bytes:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


DEEP = 10_000

BAD = [
    Bad("invalid-yaml", b"name: churn\nowner: ml@acme.example\nlabels: [a, b\n", 4, 1,
        "invalid YAML: did not find expected ',' or ']' (in the flow sequence that starts at line 3, column 9)"),
    Bad("invalid-yaml-colon", b"name: churn\nowner: a: b\n", 2, 9, "mapping values are not allowed"),
    Bad("unterminated-quote", b"name: churn\nowner: 'ml@acme.example\n", 3, 1,
        "(in the quoted scalar that starts at line 2, column 8)"),
    Bad("root-list", b"- name: churn\n- owner: me\n", 1, 1,
        "the spec must be a mapping of keys to values, got a list", loader_error=False),
    Bad("root-scalar", b"churn\n", 1, 1, "the spec must be a mapping of keys to values, got string 'churn'",
        loader_error=False),
    Bad("root-number", b"# a comment\n42\n", 2, 1, "got number 42", loader_error=False),
    Bad("duplicate-key", b"name: churn\nowner: a\nname: again\n", 3, 1,
        "duplicate key 'name' (first defined at line 1)", "YAML keys must be unique"),
    Bad("duplicate-key-nested", b"serving:\n  runtime: kserve\n  runtime: seldon\n", 3, 3, "duplicate key 'runtime'"),
    Bad("tab-indent", b"name: churn\ndata:\n\tsources: []\n", 3, 1, "invalid YAML", "spaces, not tabs"),
    Bad("tab-in-list", b"data:\n  sources:\n  \t- name: x\n", 3, 3, "invalid YAML", "spaces, not tabs"),
    Bad("utf8-bom", b"\xef\xbb\xbfname: churn\n", 1, 1, "UTF-8 byte-order mark", "without a BOM"),
    Bad("utf16-le-bom", "\ufeffname: churn\n".encode("utf-16-le"), 1, 1, "UTF-16 byte-order mark"),
    Bad("utf16-be-bom", "\ufeffname: churn\n".encode("utf-16-be"), 1, 1, "UTF-16 byte-order mark"),
    Bad("utf32-bom", "\ufeffname: churn\n".encode("utf-32-le"), 1, 1, "UTF-32 byte-order mark"),
    Bad("latin-1", b"name: churn\nowner: caf\xe9\n", 2, 11, "byte 0xe9 is not valid UTF-8", "re-encode"),
    Bad("bad-byte-after-multibyte", "name: é\nowner: ün".encode() + b"\xff rest\n", 2, 10, "byte 0xff is not valid UTF-8"),
    Bad("truncated-utf8", "name: churn\nowner: ".encode() + "é".encode()[:1], 2, 8, "byte 0xc3 is not valid UTF-8"),
    Bad("python-tag", b"name: churn\nowner: !!python/object/apply:os.system ['echo pwned']\n", 2, 8,
        "tag '!!python/object/apply:os.system' is not allowed", "plain data"),
    Bad("python-name-tag", b"owner: !!python/name:os.system\n", 1, 8, "tag '!!python/name:os.system' is not allowed"),
    Bad("local-tag", b"name: !Ref churn\n", 1, 7, "tag '!Ref' is not allowed"),
    Bad("tagged-mapping", b"serving: !!python/object:collections.OrderedDict {}\n", 1, 10, "is not allowed"),
    Bad("empty", b"", 1, 1, "file is empty", "mlspec init"),
    Bad("whitespace-only", b"\n   \n\n", 1, 1, "file is empty"),
    Bad("comment-only", b"# name: churn\n# owner: me\n", 1, 1, "file is empty"),
    Bad("null-document", b"null\n", 1, 1, "document is empty (null)"),
    Bad("tilde-document", b"# spec\n---\n~\n", 2, 1, "document is empty (null)"),
    Bad("explicit-empty-document", b"---\n...\n", 1, 1, "document is empty (null)"),
    Bad("several-documents", b"name: a\n---\nname: b\n", 2, 1, "expected one YAML document, found several"),
    Bad("control-character", b"name: churn\nowner: ml\x01@acme.example\n", 2, 10, "control character U+0001"),
    Bad("nul-byte", b"name: churn\x00\n", 1, 12, "control character U+0000"),
    Bad("escape-after-unicode", "name: churn\nowner: ééé\x1b\n".encode(), 2, 11, "control character U+001B"),
    Bad("unknown-alias", b"name: *nope\n", 1, 7, "unknown alias '*nope'"),
    Bad("complex-key", b"? [a, b]\n: c\n", 1, 3, "mapping keys must be plain scalars"),
    Bad("merge-scalar", b"a:\n  <<: 5\n", 2, 3, "a '<<' merge key takes a mapping"),
    Bad("alias-bomb", billion_laughs(9), 7, 15, f"document expands to more than {MAX_NODES:,} nodes", "alias bomb"),
    Bad("deep-flow-sequence", b"[" * DEEP + b"]" * DEEP, 1, 1001, f"more than {MAX_DEPTH} levels", "flatten"),
    Bad("deep-flow-mapping", b"{a: " * DEEP + b"}" * DEEP, 1, 257, f"more than {MAX_DEPTH} levels"),
    Bad("deep-block-sequence", b"- " * DEEP + b"x\n", 1, 129, f"more than {MAX_DEPTH} levels"),
    Bad("deep-block-mapping", "".join(" " * i + "a:\n" for i in range(100)).encode() + b" " * 100 + b"x\n",
        65, 65, f"more than {MAX_DEPTH} levels"),
    Bad("deep-indented-list-of-maps", "".join("  " * i + "- a:\n" for i in range(DEEP // 100)).encode(),
        33, 65, f"more than {MAX_DEPTH} levels"),
    Bad("bad-int-tag", b"name: !!int churn\n", 1, 7, "'churn' is not a valid !!int"),
    # model errors: found by resolve, not by the loader
    Bad("unknown-key", MINIMAL.replace("      source: customers\n", "      sorce: customers\n").encode(),
        15, 7, "unknown key 'sorce' in features.views[0]", "did you mean 'source'?", loader_error=False),
    Bad("wrong-type", MINIMAL.replace("name: minimal", "name: [minimal]").encode(), 2, 1,
        "name: input should be a valid string, got a list", loader_error=False),
    Bad("yes-is-a-string", MINIMAL.replace("      entities: [customer]\n", "      entities: [customer]\n      online: yes\n").encode(),
        17, 15, "input should be a valid boolean, got string 'yes'", "write true or false", loader_error=False),
    Bad("octal-is-a-number", MINIMAL.replace("{uri: gs://acme-models/minimal/v1}", "{uri: gs://acme-models/minimal/v1, version: 0755}").encode(),
        29, 57, "input should be a valid string, got number 755", "quote the value", loader_error=False),
    Bad("missing-keys", b"name: churn\n", 1, 1, "missing required key 'owner'", loader_error=False),
]
IDS = [b.id for b in BAD]


def _write(tmp_path: Path, case: Bad) -> Path:
    path = tmp_path / "spec" / "mlops.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.content)
    # data paths in MINIMAL are relative to the corpus
    (tmp_path / "data").mkdir(exist_ok=True)
    for csv in (CORPUS / "data").glob("*.csv"):
        (tmp_path / "data" / csv.name).write_bytes(csv.read_bytes())
    return path


def _matches(err: SpecError, path: Path, case: Bad) -> bool:
    return (
        Path(err.file).resolve() == path.resolve()
        and (err.line, err.col) == (case.line, case.col)
        and case.text in err.message
        and (case.hint is None or case.hint in (err.hint or ""))
    )


@pytest.fixture
def no_envs(tmp_path: Path) -> Path:
    empty = tmp_path / "no-environments"
    empty.mkdir()
    return empty


@pytest.mark.parametrize("case", [b for b in BAD if b.loader_error], ids=lambda b: b.id)
def test_loader_raises_located_error(case: Bad, tmp_path: Path) -> None:
    path = _write(tmp_path, case)
    with pytest.raises(SpecError) as info:
        load_file(path)
    err = info.value
    assert err.file == str(path)
    assert (err.line, err.col) == (case.line, case.col), str(err)
    assert case.text in err.message
    if case.hint:
        assert case.hint in (err.hint or "")


@pytest.mark.parametrize("case", BAD, ids=lambda b: b.id)
def test_resolve_collects_located_error(case: Bad, tmp_path: Path, no_envs: Path) -> None:
    path = _write(tmp_path, case)
    result = resolve(path, [], no_envs)
    assert result.errors, "expected an error"
    assert result.resolved == []
    assert any(_matches(e, path, case) for e in result.errors), "\n".join(map(str, result.errors))
    for err in result.errors:
        assert err.file and err.line >= 1 and err.col >= 1 and err.message


@pytest.mark.parametrize("case", BAD, ids=lambda b: b.id)
def test_cli_reports_location_and_exits_1(case: Bad, tmp_path: Path, no_envs: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    path = _write(tmp_path, case)
    result = CliRunner().invoke(main, ["validate", str(path), "--environments", str(no_envs)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert f"{display_path(path)}:{case.line}:{case.col}: error: " in result.output
    assert "Traceback" not in result.output


# --- hostile input, measured -------------------------------------------------------------


def _measure(func) -> tuple[float, int, BaseException | None]:
    """(seconds, peak traced bytes, exception) of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    exc: BaseException | None = None
    try:
        func()
    except BaseException as e:  # noqa: BLE001 - we inspect it below
        exc = e
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, exc


def test_alias_bomb_is_rejected_fast_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(billion_laughs(9))  # 9**9 = 387,420,489 strings if expanded
    elapsed, peak, exc = _measure(lambda: load_file(path))
    assert isinstance(exc, SpecError) and exc.code == "too-large", exc
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_wide_alias_fan_out_is_counted(tmp_path: Path) -> None:
    """Aliases are counted by the size of what they stand for, not as one node each."""
    text = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 300) + "]\n"
    elapsed, _, exc = _measure(lambda: load_text(text, "wide.yaml"))
    assert isinstance(exc, SpecError) and "more than 200,000 nodes" in exc.message
    # root, a's list and its 1,000 items, b's list: 1,003 nodes; each alias adds 1,001,
    # so the 199th alias crosses the cap of 200,000
    assert (exc.line, exc.col) == (2, 1 + len("b: [") + 198 * len("*a, "))
    assert elapsed < 1.0


def test_small_aliases_are_fine() -> None:
    doc = load_text("a: &a {x: 1}\nb: *a\nc: [*a, *a]\n", "ok.yaml")
    assert doc.data == {"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 1}]}
    assert doc.positions.value(("b",)).line == 2
    assert doc.positions.value(("c", 1, "x")).line == 3  # below an alias: the alias's position


@pytest.mark.parametrize("kind", ["flow", "block"])
def test_ten_thousand_levels_of_nesting(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_bytes(b"[" * DEEP + b"]" * DEEP if kind == "flow" else b"- " * DEEP + b"x\n")
    elapsed, peak, exc = _measure(lambda: load_file(path))
    assert isinstance(exc, SpecError) and exc.code == "too-deep", exc
    assert elapsed < 2.0
    assert peak < 50 * 2**20


def test_100_mb_file_is_rejected_by_size_without_reading(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "mlops.yaml"
    with path.open("wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: no disk used

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "read_text", no_reading)
    elapsed, peak, exc = _measure(lambda: load_file(path))
    assert isinstance(exc, SpecError) and exc.code == "too-large", exc
    assert "file is 104.9 MB" in exc.message and "at most 4 MiB" in exc.message
    assert (exc.file, exc.line, exc.col) == (str(path), 1, 1)
    assert elapsed < 0.5 and peak < 2**20


def test_file_just_under_the_size_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (loader.MAX_BYTES - 20) + b"\nname: x\n")
    assert load_file(path).data == {"name": "x"}


HOSTILE = {
    "alias-bomb": billion_laughs(9),
    "deep-flow": b"[" * DEEP + b"]" * DEEP,
    "deep-block": b"- " * DEEP + b"x\n",
    "python-tag": b"name: !!python/object/apply:os.system ['touch PWNED']\n",
    "not-utf8": b"name: \xff\xfe\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE) + ["huge"])
def test_hostile_input_in_a_real_process(name: str, tmp_path: Path) -> None:
    """No traceback, exit 1, file:line:col on stdout, well under a second or two."""
    path = tmp_path / "mlops.yaml"
    if name == "huge":
        with path.open("wb") as f:
            f.truncate(100 * 1024 * 1024)
    else:
        path.write_bytes(HOSTILE[name])
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlspec.cli", "validate", str(path), "--environments", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    assert proc.stdout.startswith("mlops.yaml:"), proc.stdout  # relative to the working directory
    assert not (tmp_path / "PWNED").exists()
    assert elapsed < 10  # interpreter start-up included; the parse itself is measured above


# --- files and folders that are not there ---------------------------------------------------------


def test_missing_spec_file(tmp_path: Path, no_envs: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert (info.value.line, info.value.col, info.value.code) == (1, 1, "missing-file")
    assert "no such file" in info.value.message
    result = CliRunner().invoke(main, ["validate", str(path), "--environments", str(no_envs), "-f", "text"],
                                env={"NO_COLOR": "1"})
    assert result.exit_code == 1
    assert f"{display_path(path)}:1:1: error: no such file" in result.output


def test_spec_path_is_a_directory_file(tmp_path: Path) -> None:
    folder = tmp_path / "mlops.yaml"
    folder.mkdir()
    with pytest.raises(SpecError, match="is a directory"):
        load_file(folder)


def test_directory_without_spec(tmp_path: Path, no_envs: Path) -> None:
    folder = tmp_path / "empty-project"
    folder.mkdir()
    (folder / "README.md").write_text("no spec here\n")
    result = CliRunner().invoke(main, ["validate", str(folder), "--environments", str(no_envs), "-f", "text"],
                                env={"NO_COLOR": "1"})
    assert result.exit_code == 1
    assert f"{display_path(folder)}:1:1: error: no mlops.yaml found under" in result.output


def test_unknown_environment(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(MINIMAL.replace("../data/", str(CORPUS / "data") + "/"), encoding="utf-8")
    envs = tmp_path / "environments"
    envs.mkdir()
    (envs / "dev.yaml").write_bytes((CORPUS / "environments" / "dev.yaml").read_bytes())
    result = resolve(spec, ["nope"], envs)
    assert len(result.errors) == 1
    err = result.errors[0]
    assert (Path(err.file), err.line, err.col) == (envs / "nope.yaml", 1, 1)
    assert "unknown environment 'nope'" in err.message and err.hint == "known: dev"
    result = resolve(spec, ["deb"], envs)
    assert result.errors[0].hint == "did you mean 'dev'?"
    cli = CliRunner().invoke(main, ["validate", str(spec), "--environments", str(envs), "--env", "nope"],
                             env={"NO_COLOR": "1"})
    assert cli.exit_code == 1
    assert f"{(envs / 'nope.yaml')}:1:1: error: unknown environment 'nope'" in cli.output
    # the spec is fine for the environments that exist
    ok = CliRunner().invoke(main, ["validate", str(spec), "--environments", str(envs), "--env", "dev"])
    assert ok.exit_code == 0, ok.output


def test_missing_environments_folder(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(MINIMAL.replace("../data/", str(CORPUS / "data") + "/"), encoding="utf-8")
    result = resolve(spec, ["prod"], tmp_path / "no-such-folder")
    assert [(e.line, e.col) for e in result.errors] == [(1, 1)]
    assert "unknown environment 'prod'" in result.errors[0].message


def test_broken_environment_file_is_located_in_it(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(MINIMAL.replace("../data/", str(CORPUS / "data") + "/"), encoding="utf-8")
    envs = tmp_path / "environments"
    envs.mkdir()
    (envs / "dev.yaml").write_text("name: dev\nnamespace: [ml-dev\n", encoding="utf-8")
    (envs / "prod.yaml").write_text("name: prod\nnamespace: ml-prod\nregistry: r\nargocd: {repo_url: https://g/x}\n"
                                    "storage: {artifacts: s3://b/p}\npolicy: {min_replicas: 2}\n", encoding="utf-8")
    (envs / "qa.yaml").write_text("name: staging\nnamespace: ml-qa\nregistry: r\nargocd: {repo_url: https://g/x}\n"
                                  "storage: {artifacts: s3://b/p}\n", encoding="utf-8")
    errors = resolve(spec, ["dev", "prod", "qa"], envs).errors
    got = {(Path(e.file).name, e.line, e.col) for e in errors}
    assert got == {("dev.yaml", 3, 1), ("prod.yaml", 6, 1), ("qa.yaml", 1, 7)}, errors
    by_file = {Path(e.file).name: e for e in errors}
    assert by_file["prod.yaml"].hint == "did you mean 'policies'?"
    assert "names itself 'staging'" in by_file["qa.yaml"].message


# --- YAML 1.2 core schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"), ("NO", "NO"),
        ("true", True), ("True", True), ("FALSE", False),
        ("null", None), ("~", None), ("", None), ("Null", None),
        ("0755", 755), ("0o17", 15), ("0x1F", 31), ("-12", -12), ("+3", 3),
        ("1.5", 1.5), ("1e3", 1000.0), (".5", 0.5), ("-.inf", -math.inf), (".Inf", math.inf),
        ("1_000", "1_000"), ("0b101", "0b101"), ("12:30", "12:30"), ("2024-01-01", "2024-01-01"),
        ("0x", "0x"), ("1.2.3", "1.2.3"), ("e3", "e3"),
    ],
)
def test_core_schema_resolution(text: str, value) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_core_schema_nan() -> None:
    assert math.isnan(resolve_plain(".nan"))


def test_quoted_and_tagged_scalars_stay_strings() -> None:
    doc = load_text("a: '0755'\nb: \"yes\"\nc: !!str 12\nd: !!float 3\ne: !!int '7'\nf: |\n  text\n", "t.yaml")
    assert doc.data == {"a": "0755", "b": "yes", "c": "12", "d": 3.0, "e": 7, "f": "text\n"}
    assert isinstance(doc.data["d"], float)


def test_merge_keys_do_not_override_explicit_keys() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n", "m.yaml")
    assert doc.data["thing"] == {"x": 1, "y": 3}
    both = load_text("a: &a {x: 1}\nb: &b {x: 2, z: 0}\nc:\n  <<: [*a, *b]\n", "m.yaml")
    assert both.data["c"] == {"x": 1, "z": 0}  # the first mapping in the list wins


def test_positions_of_keys_and_values() -> None:
    doc = load_text("name: churn\nserving:\n  runtime: kserve\n  traffic: {champion: 90}\nlist:\n  - a\n  - {b: 1}\n", "p.yaml")
    pos = doc.positions
    assert (pos.key(("serving",)).line, pos.key(("serving",)).col) == (2, 1)
    assert (pos.value(("serving", "runtime")).line, pos.value(("serving", "runtime")).col) == (3, 12)
    assert (pos.key(("serving", "traffic", "champion")).col) == 13
    assert (pos.value(("serving", "traffic", "champion")).col) == 23
    assert (pos.value(("list", 1, "b")).line, pos.value(("list", 1, "b")).col) == (7, 9)
    # a path that is not in the document: the key of its nearest ancestor
    missing = pos.value(("serving", "replicas", "min"))
    assert (missing.line, missing.col) == (2, 1)
    assert pos.value(("nothing",)).line == 1
    # columns count characters, not bytes
    wide = load_text("é: ü\nx: [é, ü]\n", "w.yaml").positions
    assert wide.value(("x", 1)).col == 8


def test_document_keeps_int_and_bool_keys() -> None:
    doc = load_text("2: two\ntrue: yes\nnull: x\n1.5: y\n", "k.yaml")
    assert doc.data == {2: "two", True: "yes", "null": "x", "1.5": "y"}


def test_spec_errors_sort_and_deduplicate() -> None:
    a = SpecError("b", "f.yaml", 2, 1)
    b = SpecError("a", "f.yaml", 1, 5)
    errors = SpecErrors([a, b, SpecError("b", "f.yaml", 2, 1)])
    assert [e.message for e in errors] == ["a", "b"]
    assert str(b) == "f.yaml:1:5: a"
    assert str(SpecError("m", "f", 1, 1, hint="h")) == "f:1:1: m (hint: h)"

"""Tests for mlspec.edit: text splices that keep every other byte, and the semantics of
`mlspec traffic / promote / rollback / challenger` (which layer is written so that each
environment's effective values are the ones asked for)."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlspec import commands, edit
from mlspec.errors import SpecError
from mlspec.loader import load_text

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "edit_specs"
COMMENTED = (SPECS / "commented.yaml").read_text(encoding="utf-8")
FLOW = (SPECS / "flow.yaml").read_text(encoding="utf-8")

#: Environments as the editing commands see them (the repository's, in spirit: dev's
#: file overrides the replicas, prod and staging override nothing).
LAYERS = {
    "dev": edit.Layer("dev", {"serving": {"replicas": {"min": 1, "max": 2}}}, "environments/dev.yaml"),
    "prod": edit.Layer("prod", {}, "environments/prod.yaml"),
    "staging": edit.Layer("staging", {}, "environments/staging.yaml"),
}


def changes(old: str, new: str) -> tuple[list[str], list[str]]:
    """The lines removed from ``old`` and added in ``new`` (difflib), newlines included."""
    removed, added = [], []
    matcher = difflib.SequenceMatcher(None, old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      autojunk=False)
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return removed, added


def resolved(text: str, env: str | None, layers=LAYERS) -> dict:
    """The effective serving section of ``text`` for ``env`` (the README's precedence)."""
    data = load_text(text).data
    base = {k: v for k, v in data.items() if k != "overrides"}
    if env is None:
        return base["serving"]
    lower = edit.merge(base, layers[env].overrides if env in layers else {})
    return edit.merge(lower, (data.get("overrides") or {}).get(env) or {})["serving"]


def split(serving: dict) -> tuple[int, int]:
    traffic = serving.get("traffic", {})
    return traffic.get("champion", 100), traffic.get("challenger", 0)


# ----------------------------------------------------------------------------- traffic


def test_traffic_changes_only_the_two_share_lines_and_keeps_their_comments_aligned():
    result = edit.traffic(COMMENTED, 25, None, LAYERS)
    assert changes(COMMENTED, result.new) == (
        ["    champion: 90     # percent\n", "    challenger: 10   # percent\n"],
        ["    champion: 75     # percent\n", "    challenger: 25   # percent\n"],
    )
    assert split(resolved(result.new, None)) == (75, 25)
    assert result.summary == "champion 75%, challenger 25%"


def test_traffic_with_env_creates_the_overrides_block_when_there_is_none():
    assert "overrides" not in load_text(COMMENTED).data
    result = edit.traffic(COMMENTED, 40, "prod", LAYERS)
    removed, added = changes(COMMENTED, result.new)
    assert removed == []
    assert added == ["\n", "overrides:\n", "  prod:\n", "    serving:\n",
                     "      traffic: {champion: 60, challenger: 40}\n"]
    # appended after the last section, before the file's closing comment
    assert result.new.endswith("      traffic: {champion: 60, challenger: 40}\n# the end\n")
    assert split(resolved(result.new, "prod")) == (60, 40)
    assert split(resolved(result.new, "dev")) == (90, 10)  # other environments untouched


def test_traffic_with_env_writes_both_shares_whatever_the_lower_layers_say():
    # prod's environment file already gives the champion 70; the spec's override says only
    # challenger: 20 (a sum of 90 -- the user's half-done edit).  Asking for 30 must leave
    # a split that is exactly 70/30 in prod, so both keys are written.
    layers = {**LAYERS, "prod": edit.Layer("prod", {"serving": {"traffic": {"champion": 70}}}, "environments/prod.yaml")}
    text = COMMENTED.replace("# the end\n", "overrides:\n  prod:\n    serving:\n      traffic:\n"
                                           "        challenger: 20   # canary\n# the end\n")
    result = edit.traffic(text, 30, "prod", layers)
    assert changes(text, result.new) == (
        ["        challenger: 20   # canary\n"],
        ["        champion: 70\n", "        challenger: 30   # canary\n"],  # in the model's key order
    )
    assert load_text(result.new).data["overrides"]["prod"]["serving"]["traffic"] == {"champion": 70, "challenger": 30}
    assert split(resolved(result.new, "prod", layers)) == (70, 30)


def test_traffic_already_in_place_changes_nothing():
    result = edit.traffic(COMMENTED, 10, None, LAYERS)
    assert not result.changed and result.new == COMMENTED


def test_traffic_in_a_flow_mapping_changes_only_that_line():
    result = edit.traffic(FLOW, 30, None, LAYERS)
    assert changes(FLOW, result.new) == (["  traffic: {champion: 80, challenger: 20},\n"],
                                         ["  traffic: {champion: 70, challenger: 30},\n"])
    # dev's own override keeps its even split, and the user is told
    assert split(resolved(result.new, "dev")) == (50, 50)
    assert len(result.notes) == 1 and result.notes[0].startswith("dev keeps serving.traffic {champion: 50, challenger: 50}")


def test_traffic_with_env_into_flow_overrides():
    result = edit.traffic(FLOW, 40, "prod", LAYERS)
    removed, added = changes(FLOW, result.new)
    assert removed == ["overrides: {dev: {serving: {traffic: {champion: 50, challenger: 50}}}}   # dev splits evenly\n"]
    assert added == [("overrides: {dev: {serving: {traffic: {champion: 50, challenger: 50}}}, "
                      "prod: {serving: {traffic: {champion: 60, challenger: 40}}}}   # dev splits evenly\n")]


def test_traffic_refuses_a_share_without_a_challenger():
    text = edit.rollback(COMMENTED, "prod", True, LAYERS).new
    with pytest.raises(SpecError) as caught:
        edit.traffic(text, 30, "prod", LAYERS, file="mlops.yaml")
    assert "no challenger to send 30% to in prod" in caught.value.message
    assert caught.value.line == load_text(text).positions.key(("overrides", "prod", "serving", "challenger")).line


def test_traffic_on_a_shadow_rollout_sets_the_mirrored_share():
    text = COMMENTED.replace("  rollout: ab   # explicit split", "  rollout: shadow   # mirrored").replace(
        "    champion: 90     # percent\n    challenger: 10   # percent\n",
        "    champion: 100    # percent\n    challenger: 0    # percent\n")
    result = edit.traffic(text, 20, None, LAYERS)
    assert changes(text, result.new) == ([], ["  mirror: 20\n"])
    assert resolved(result.new, None)["mirror"] == 20 and split(resolved(result.new, None)) == (100, 0)
    with pytest.raises(SpecError, match="cannot mirror 0%"):
        edit.traffic(text, 0, None, LAYERS)


# ----------------------------------------------------------------------------- promote


def test_promote_with_env_when_the_challenger_is_in_the_spec_as_written():
    """The user promotes in prod: prod serves the challenger as champion at 100% and no
    longer has a challenger; dev and staging keep their canary; the spec as written is
    untouched."""
    result = edit.promote(COMMENTED, "prod", LAYERS)
    removed, added = changes(COMMENTED, result.new)
    assert removed == []
    assert added == ["\n", "overrides:\n", "  prod:\n", "    serving:\n",
                     '      champion: {uri: gs://acme-models/churn/v4, version: "4"}\n',
                     "      challenger: null\n",
                     "      traffic: {champion: 100, challenger: 0}\n"]
    prod = resolved(result.new, "prod")
    assert prod["champion"] == {"uri": "gs://acme-models/churn/v4", "version": "4"}
    assert "challenger" not in prod and split(prod) == (100, 0)
    for env in ("dev", "staging"):
        other = resolved(result.new, env)
        assert other["champion"]["uri"] == "gs://acme-models/churn/v3" and split(other) == (90, 10)
    assert any("dev, staging still run gs://acme-models/churn/v4" in note for note in result.notes)


def test_promote_with_env_clears_a_stale_champion_version():
    # the challenger has no version, the champion below it has one: version: null in prod
    text = COMMENTED.replace('{uri: gs://acme-models/churn/v4, version: "4"}', "{uri: gs://acme-models/churn/v4}")
    result = edit.promote(text, "prod", LAYERS)
    assert "      champion: {uri: gs://acme-models/churn/v4, version: null}\n" in result.new
    assert resolved(result.new, "prod")["champion"] == {"uri": "gs://acme-models/churn/v4"}


def test_promote_in_the_spec_as_written():
    result = edit.promote(COMMENTED, None, LAYERS)
    assert changes(COMMENTED, result.new) == (
        ['    uri: "gs://acme-models/churn/v3"   # double-quoted URI\n',
         "    version: '3'                       # single-quoted version\n",
         "  # the model under test\n",
         '  challenger: {uri: gs://acme-models/churn/v4, version: "4"}   # flow mapping\n',
         "    champion: 90     # percent\n", "    challenger: 10   # percent\n"],
        ['    uri: "gs://acme-models/churn/v4"   # double-quoted URI\n',
         "    version: '4'                       # single-quoted version\n",
         "    champion: 100    # percent\n", "    challenger: 0    # percent\n"],
    )


def test_promote_without_env_fixes_an_environment_left_splitting_to_nothing():
    result = edit.promote(FLOW, None, LAYERS)
    dev = resolved(result.new, "dev")
    assert "challenger" not in dev and split(dev) == (100, 0)
    assert "also set dev to 100% champion: it sent 50% to the challenger" in result.notes
    assert changes(FLOW, result.new)[1] == [
        "  champion: {uri: 's3://acme-models/churn/v4'},   # quoted\n",
        "  traffic: {champion: 100, challenger: 0},\n",
        "overrides: {dev: {serving: {traffic: {champion: 100, challenger: 0}}}}   # dev splits evenly\n"]


def test_promote_refuses_without_a_challenger_and_on_a_shadow_rollout():
    text = edit.rollback(COMMENTED, None, True, LAYERS).new
    with pytest.raises(SpecError) as caught:
        edit.promote(text, None, LAYERS, file="x/mlops.yaml")
    assert caught.value.message == "there is no challenger to promote" and caught.value.file == "x/mlops.yaml"
    shadow = COMMENTED.replace("  rollout: ab   # explicit split", "  rollout: shadow")
    with pytest.raises(SpecError, match="without a challenger to mirror to") as caught:
        edit.promote(shadow, None, LAYERS)
    assert caught.value.line == shadow.splitlines().index("  rollout: shadow") + 1


# ----------------------------------------------------------------------------- sequences


def _lines(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_promote_rollback_traffic_sequence_in_the_spec_as_written():
    step1 = edit.promote(COMMENTED, None, LAYERS).new
    expected1 = _lines(
        COMMENTED,
        ('    uri: "gs://acme-models/churn/v3"', '    uri: "gs://acme-models/churn/v4"'),
        ("    version: '3'  ", "    version: '4'  "),
        ('  # the model under test\n  challenger: {uri: gs://acme-models/churn/v4, version: "4"}   # flow mapping\n', ""),
        ("    champion: 90     # percent\n    challenger: 10   # percent\n",
         "    champion: 100    # percent\n    challenger: 0    # percent\n"),
    )
    assert step1 == expected1
    step2 = edit.challenger(step1, "gs://acme-models/churn/v5", "5", 20, None, LAYERS).new
    expected2 = _lines(
        expected1,
        ("                       # single-quoted version\n",
         '                       # single-quoted version\n  challenger: {uri: gs://acme-models/churn/v5, version: "5"}\n'),
        ("    champion: 100    # percent\n    challenger: 0    # percent\n",
         "    champion: 80     # percent\n    challenger: 20   # percent\n"),
    )
    assert step2 == expected2
    step3 = edit.rollback(step2, None, False, LAYERS).new
    assert step3 == _lines(expected2, ("    champion: 80     # percent\n    challenger: 20   # percent\n",
                                       "    champion: 100    # percent\n    challenger: 0    # percent\n"))
    step4 = edit.traffic(step3, 35, None, LAYERS).new
    assert step4 == _lines(step3, ("    champion: 100    # percent\n    challenger: 0    # percent\n",
                                   "    champion: 65     # percent\n    challenger: 35   # percent\n"))
    step5 = edit.rollback(step4, None, True, LAYERS).new
    assert step5 == _lines(step3, ('  challenger: {uri: gs://acme-models/churn/v5, version: "5"}\n', ""))


def test_promote_rollback_traffic_sequence_for_one_environment():
    tail = "# the end\n"
    step1 = edit.challenger(COMMENTED, "gs://acme-models/churn/v5", None, 30, "prod", LAYERS).new
    # the new challenger has no version; the one below it (the spec's) does: null it out
    assert step1 == COMMENTED.replace(tail, "\noverrides:\n  prod:\n    serving:\n"
                                      "      challenger: {uri: gs://acme-models/churn/v5, version: null}\n"
                                      "      traffic: {champion: 70, challenger: 30}\n" + tail)
    step2 = edit.promote(step1, "prod", LAYERS).new
    assert step2 == COMMENTED.replace(tail, "\noverrides:\n  prod:\n    serving:\n"
                                      "      champion: {uri: gs://acme-models/churn/v5, version: null}\n"
                                      "      challenger: null\n"
                                      "      traffic: {champion: 100, challenger: 0}\n" + tail)
    assert not edit.rollback(step2, "prod", False, LAYERS).changed  # already 100% champion
    step3 = edit.challenger(step2, "gs://acme-models/churn/v6", "6", 10, "prod", LAYERS).new
    assert step3 == COMMENTED.replace(tail, "\noverrides:\n  prod:\n    serving:\n"
                                      "      champion: {uri: gs://acme-models/churn/v5, version: null}\n"
                                      '      challenger: {uri: gs://acme-models/churn/v6, version: "6"}\n'
                                      "      traffic: {champion: 90, challenger: 10}\n" + tail)
    step4 = edit.rollback(step3, "prod", True, LAYERS).new
    assert step4 == step2
    for step in (step1, step2, step3, step4):  # the spec as written never changed
        assert resolved(step, None) == resolved(COMMENTED, None)


def test_rollback_without_env_reaches_every_environment():
    result = edit.rollback(FLOW, None, False, LAYERS)
    for env in (None, "dev", "prod", "staging"):
        assert split(resolved(result.new, env)) == (100, 0)
    assert "also set dev to 100% champion: its override sent 50% to the challenger" in result.notes


def test_rollback_without_env_overrides_an_environment_file_that_splits():
    # dev's environment file (not the spec) sends half the traffic to the challenger: the
    # rollback can only win there through the spec's overrides.dev, the highest layer
    layers = {**LAYERS, "dev": edit.Layer("dev", {"serving": {"traffic": {"champion": 50, "challenger": 50}}},
                                          "environments/dev.yaml")}
    result = edit.rollback(COMMENTED, None, False, layers)
    assert split(resolved(result.new, "dev", layers)) == (100, 0)
    assert load_text(result.new).data["overrides"] == {"dev": {"serving": {"traffic": {"champion": 100, "challenger": 0}}}}
    assert "also set dev to 100% champion: its override sent 50% to the challenger" in result.notes


def test_rollback_drop_challenger_prunes_an_override_it_empties():
    text = COMMENTED.replace("# the end\n", "overrides:\n  # a challenger for dev alone\n  dev:\n    serving:\n"
                                           "      challenger: {uri: gs://acme-models/churn/dev}\n# the end\n")
    text = edit.rollback(text, None, True, LAYERS).new
    assert "overrides" not in load_text(text).data  # dev's block only held the challenger
    assert "# a challenger for dev alone" not in text and text.endswith("    # percent\n  rollout: ab   # explicit split\n"
                                                                         "  replicas: {min: 2, max: 4}\n  resources:\n"
                                                                         "    requests: {cpu: 500m, memory: 1Gi}\n"
                                                                         '    limits:   {cpu: "1", memory: 2Gi}\n'
                                                                         "  # end of serving\n\ndrift:\n  method: ks\n"
                                                                         "  features: [tenure_months, monthly_charges]\n"
                                                                         "  p_value: 0.01\n"
                                                                         "  reference: {source: customers, sample_size: 500}\n"
                                                                         "  action: retrain   # retrain on drift\n"
                                                                         "  detector_uri: gs://acme-models/churn/drift-detector"
                                                                         "   # pinned, not beside the champion\n# the end\n")


def test_challenger_replaces_the_old_one_without_leaving_its_version():
    result = edit.challenger(COMMENTED, "gs://acme-models/churn/v5", None, None, None, LAYERS)
    assert changes(COMMENTED, result.new) == (
        ['  challenger: {uri: gs://acme-models/churn/v4, version: "4"}   # flow mapping\n'],
        ["  challenger: {uri: gs://acme-models/churn/v5}   # flow mapping\n"],
    )


def test_challenger_replaces_a_null_left_by_promote():
    text = edit.promote(COMMENTED, "prod", LAYERS).new
    result = edit.challenger(text, "gs://acme-models/churn/v7", "2026.1", None, "prod", LAYERS)
    assert changes(text, result.new) == (["      challenger: null\n"],
                                         ['      challenger: {uri: gs://acme-models/churn/v7, version: "2026.1"}\n'])


# ----------------------------------------------------------------------------- bytes


def test_crlf_line_endings_and_a_missing_final_newline_are_kept():
    text = "name: x  # crlf\r\nserving:\r\n  champion: {uri: gs://a/1}\r\n  challenger: {uri: gs://a/2}"
    result = edit.traffic(text, 30, "prod", LAYERS)
    assert result.new == (text + "\r\noverrides:\r\n  prod:\r\n    serving:\r\n"
                          "      traffic: {champion: 70, challenger: 30}\r\n")


def test_an_empty_overrides_key_keeps_its_comment():
    text = "name: x\nserving:\n  champion: {uri: gs://a/1}\n  challenger: {uri: gs://a/2}\noverrides:   # none yet\n"
    result = edit.traffic(text, 30, "dev", LAYERS)
    assert result.new == text + "  dev:\n    serving:\n      traffic: {champion: 70, challenger: 30}\n"


def test_four_space_indentation_is_followed():
    text = "name: x\nserving:\n    champion:\n        uri: gs://a/1\n    challenger: {uri: gs://a/2}\n"
    result = edit.traffic(text, 30, "dev", LAYERS)
    assert result.new == text + "overrides:\n    dev:\n        serving:\n            traffic: {champion: 70, challenger: 30}\n"


def test_an_alias_is_not_edited_through():
    text = "name: x\nbase: &m {uri: gs://a/1}\nserving:\n  champion: *m\n  challenger: {uri: gs://a/2}\n"
    with pytest.raises(SpecError, match="is an alias"):
        edit.promote(text, None, LAYERS)


SCALARS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(value=SCALARS, flow=st.booleans(), style=st.sampled_from(["", "'", '"']))
def test_rendered_scalars_read_back_as_themselves(value: str, flow: bool, style: str):
    rendered = edit.render_scalar(value, flow=flow, style=style)
    text = f"k: {{a: {rendered}}}\n" if flow else f"k: {rendered}\n"
    data = load_text(text).data["k"]
    assert (data["a"] if flow else data) == value


@settings(max_examples=60, deadline=None)
@given(uri=st.from_regex(r"\A(gs|s3|https)://[a-z0-9\-]{1,10}/[A-Za-z0-9._:,#{}' \-]{1,16}\Z"),
       version=st.one_of(st.none(), st.from_regex(r"\A[0-9a-z.:\- ]{1,8}\Z")),
       share=st.integers(0, 100), env=st.sampled_from([None, "dev", "prod"]), spec=st.sampled_from(["commented", "flow"]))
def test_any_challenger_edit_holds_exactly_what_was_asked(uri, version, share, env, spec):
    text = COMMENTED if spec == "commented" else FLOW
    result = edit.challenger(text, uri, version, share, env, LAYERS)
    serving = resolved(result.new, env)
    assert serving["challenger"] == ({"uri": uri} if version is None else {"uri": uri, "version": version})
    assert split(serving) == (100 - share, share)
    if env is not None:  # an override edit leaves the spec as written alone
        assert resolved(result.new, None) == resolved(text, None)


# ----------------------------------------------------------------------------- validation & I/O


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """The commented spec in a scratch project (the repository's environments, churn's data)."""
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    folder = tmp_path / "examples" / "edited"
    shutil.copytree(ROOT / "examples" / "churn" / "data", folder / "data")
    (tmp_path / ".git").mkdir()
    path = folder / "mlops.yaml"
    path.write_bytes(COMMENTED.encode())
    return path


def test_edited_specs_validate(spec_file: Path):
    assert edit.check_candidate(spec_file, COMMENTED, COMMENTED, None, None) == []
    text = COMMENTED
    for make in (lambda t: edit.traffic(t, 40, "prod", LAYERS), lambda t: edit.promote(t, "staging", LAYERS),
                 lambda t: edit.challenger(t, "gs://acme-models/churn/v9", "9", 5, None, LAYERS),
                 lambda t: edit.promote(t, None, LAYERS),
                 lambda t: edit.challenger(t, "gs://acme-models/churn/v10", None, 10, "prod", LAYERS),
                 lambda t: edit.rollback(t, None, True, LAYERS)):
        new = make(text).new
        assert new != text
        assert edit.check_candidate(spec_file, text, new, None, None) == []
        text = new
    assert not list(spec_file.parent.glob(f".*{edit.TEMP_SUFFIX}"))  # the candidates were deleted


def test_check_candidate_locates_problems_in_the_file_on_disk(spec_file: Path):
    new = edit.traffic(COMMENTED, 60, "prod", LAYERS).new
    errors = edit.check_candidate(spec_file, COMMENTED, new, ["prod"], None)
    assert [e.code for e in errors] == ["policy"]
    assert errors[0].file.endswith("examples/edited/mlops.yaml") and edit.TEMP_SUFFIX not in errors[0].message
    assert errors[0].line == COMMENTED.splitlines().index("# the end")  # the line the block would follow
    assert not list(spec_file.parent.glob(f".*{edit.TEMP_SUFFIX}"))


def test_a_refused_edit_leaves_the_file_byte_identical(spec_file: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(spec_file.parents[2])
    def run(command) -> int:
        return commands.guarded("text", command)

    before = spec_file.read_bytes()
    stat_before = spec_file.stat()
    assert run(lambda: commands.traffic(spec_file, 80, "prod", None)) == commands.EXIT_INVALID  # prod caps at 50%
    assert spec_file.read_bytes() == before
    assert run(lambda: commands.promote(spec_file, "prod", None)) == commands.EXIT_OK  # prod has no challenger now
    after_promote = spec_file.read_bytes()
    assert after_promote != before
    assert run(lambda: commands.traffic(spec_file, 10, "prod", None)) == commands.EXIT_INVALID  # no challenger
    assert spec_file.read_bytes() == after_promote
    shadow = COMMENTED.replace("  rollout: ab   # explicit split", "  rollout: shadow").encode()
    spec_file.write_bytes(shadow)
    assert run(lambda: commands.promote(spec_file, None, None)) == commands.EXIT_INVALID
    assert spec_file.read_bytes() == shadow
    invalid = COMMENTED.replace("  replicas: {min: 2, max: 4}", "  replicas: {min: 5, max: 4}").encode()
    spec_file.write_bytes(invalid)  # invalid before the edit: the edit is refused, not blamed on
    assert run(lambda: commands.traffic(spec_file, 20, None, None)) == commands.EXIT_INVALID
    assert spec_file.read_bytes() == invalid
    out = capsys.readouterr().out
    assert "exceeds 50% (policy max_challenger_traffic of environment 'prod')" in out
    assert "there is no challenger to send 10% to in prod" in out
    assert "min (5) is greater than max (4)" in out
    assert spec_file.stat().st_mode == stat_before.st_mode
    assert sorted(p.name for p in spec_file.parent.iterdir()) == ["data", "mlops.yaml"]


def test_apply_keeps_the_mode_and_refuses_a_file_changed_meanwhile(tmp_path: Path):
    path = tmp_path / "mlops.yaml"
    path.write_bytes(b"name: a\n")
    path.chmod(0o640)
    edit.apply(path, b"name: a\n", "name: b\n")
    assert path.read_bytes() == b"name: b\n" and path.stat().st_mode & 0o777 == 0o640
    with pytest.raises(SpecError, match="changed while it was being edited"):
        edit.apply(path, b"name: a\n", "name: c\n")
    assert path.read_bytes() == b"name: b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mlops.yaml"]


def test_apply_through_a_symlink_replaces_the_target(tmp_path: Path):
    target = tmp_path / "real.yaml"
    target.write_bytes(b"name: a\n")
    link = tmp_path / "mlops.yaml"
    link.symlink_to(target)
    edit.apply(link, b"name: a\n", "name: b\n")
    assert link.is_symlink() and target.read_bytes() == b"name: b\n"


def test_stale_temporary_files_of_dead_processes_are_cleaned(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".mlops.yaml.{pid}.abcd1234.write{edit.TEMP_SUFFIX}"
    mine = tmp_path / f".mlops.yaml.{os.getpid()}.abcd1234.write{edit.TEMP_SUFFIX}"
    stale.write_text("x")
    mine.write_text("x")
    edit.clean_stale(tmp_path)
    assert not stale.exists() and mine.exists()

"""Tests for mlspec.writer: ownership, path safety, --check, and crash atomicity."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import helpers_writer_kill as kill_trees
import pytest

from mlspec import __version__, writer
from mlspec.errors import SpecError, SpecErrors
from mlspec.render import sha256_hex

PROJECT = Path(__file__).resolve().parent.parent


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (path -> bytes) and directory (path -> None) under root but .mlspec/."""
    tree: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d != ".mlspec"]
        for name in dirnames:
            tree[(rel_dir / name).as_posix()] = None
        for name in filenames:
            tree[(rel_dir / name).as_posix()] = (Path(dirpath) / name).read_bytes()
    return tree


def mtimes(root: Path) -> dict[str, int]:
    return {str(path): path.lstat().st_mtime_ns for path in [root, *root.rglob("*")]}


def manifest(root: Path) -> dict:
    return json.loads((root / ".mlspec/manifest.json").read_text())


def write(root: Path, outputs: dict[str, tuple[bytes, str]], scopes: set[str], **kwargs) -> writer.Result:
    return writer.apply(writer.plan(root, outputs, scopes, **kwargs))


class Crash(Exception):
    """Stands in for a crash in the in-process recovery tests."""


def crash_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Make the next write (or recovery) raise Crash after ``steps`` steps."""
    remaining = [steps]

    def hook():
        def step():
            remaining[0] -= 1
            if remaining[0] == 0:
                raise Crash

        return step

    monkeypatch.setattr(writer, "_crash_hook", hook)


# ----------------------------------------------------------------------------- basics


def test_create_update_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "out"
    first = write(root, {"a.yaml": (b"a\n", "s"), "d/b.yaml": (b"b\n", "s")}, {"s"})
    assert first.created == ["a.yaml", "d/b.yaml"] and not first.updated
    assert (root / "d/b.yaml").read_bytes() == b"b\n"

    plan = writer.plan(root, {"a.yaml": (b"a\n", "s"), "d/b.yaml": (b"B\n", "s")}, {"s"})
    assert (plan.create, plan.update, plan.unchanged) == ([], ["d/b.yaml"], ["a.yaml"])
    assert plan.prune == [] and plan.conflicts == []
    writer.apply(plan)
    assert (root / "d/b.yaml").read_bytes() == b"B\n"


def test_manifest_format(tmp_path: Path) -> None:
    write(tmp_path, {"x/a.yaml": (b"a\n", "churn@dev"), "b.json": (b"{}\n", "churn")}, {"churn", "churn@dev"})
    text = (tmp_path / ".mlspec/manifest.json").read_text()
    assert json.loads(text) == {
        "version": 2,
        "files": {
            "b.json": {"sha256": sha256_hex(b"{}\n"), "scope": "churn", "mlspec": __version__},
            "x/a.yaml": {"sha256": sha256_hex(b"a\n"), "scope": "churn@dev", "mlspec": __version__},
        },
    }
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert sorted(p.name for p in (tmp_path / ".mlspec").iterdir()) == [".gitignore", "lock", "manifest.json"]


def test_noop_apply_writes_nothing(tmp_path: Path) -> None:
    outputs = {"a.yaml": (b"a\n", "s"), "d/e/b.yaml": (b"b\n", "s")}
    write(tmp_path, outputs, {"s"})
    before = mtimes(tmp_path)
    time.sleep(0.01)
    result = write(tmp_path, outputs, {"s"})
    assert not result.changed and result.unchanged == ["a.yaml", "d/e/b.yaml"]
    assert mtimes(tmp_path) == before


def test_scope_change_only_updates_manifest(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": (b"a\n", "one")}, {"one"})
    before = mtimes(tmp_path)
    plan = writer.plan(tmp_path, {"a.yaml": (b"a\n", "two")}, {"two"})
    assert plan.update == [] and plan.unchanged == ["a.yaml"] and plan.changed
    time.sleep(0.01)
    writer.apply(plan)
    assert manifest(tmp_path)["files"]["a.yaml"]["scope"] == "two"
    assert mtimes(tmp_path)[str(tmp_path / "a.yaml")] == before[str(tmp_path / "a.yaml")]  # the file is not touched


# ---------------------------------------------------------------------------- pruning


def test_prune_only_own_scope(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"dev/a.yaml": (b"1", "m@dev"), "dev/b.yaml": (b"2", "m@dev"), "prod/a.yaml": (b"3", "m@prod")},
        {"m@dev", "m@prod"},
    )
    result = write(tmp_path, {"dev/a.yaml": (b"1", "m@dev")}, {"m@dev"})
    assert result.pruned == ["dev/b.yaml"]
    assert snapshot(tmp_path) == {"dev": None, "dev/a.yaml": b"1", "prod": None, "prod/a.yaml": b"3"}
    assert set(manifest(tmp_path)["files"]) == {"dev/a.yaml", "prod/a.yaml"}


def test_prune_removes_emptied_directories_only(tmp_path: Path) -> None:
    write(tmp_path, {"a/b/c/x.yaml": (b"x", "s"), "a/keep/y.yaml": (b"y", "s"), "k/z.yaml": (b"z", "s")}, {"s"})
    (tmp_path / "k/notes.txt").write_text("mine")
    (tmp_path / "a/b/empty-by-user").mkdir()
    write(tmp_path, {"a/keep/y.yaml": (b"y", "s")}, {"s"})
    assert snapshot(tmp_path) == {
        "a": None,
        "a/b": None,
        "a/b/empty-by-user": None,
        "a/keep": None,
        "a/keep/y.yaml": b"y",
        "k": None,
        "k/notes.txt": b"mine",
    }
    write(tmp_path, {}, {"s"})
    assert not (tmp_path / "a/keep").exists() and (tmp_path / "a/b/empty-by-user").is_dir()


def test_prune_of_already_deleted_file_drops_it_from_manifest(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": (b"a", "s"), "b.yaml": (b"b", "s")}, {"s"})
    (tmp_path / "b.yaml").unlink()
    result = write(tmp_path, {"a.yaml": (b"a", "s")}, {"s"})
    assert result.pruned == ["b.yaml"] and list(manifest(tmp_path)["files"]) == ["a.yaml"]


def test_file_may_become_directory_and_back(tmp_path: Path) -> None:
    write(tmp_path, {"a": (b"file", "s")}, {"s"})
    write(tmp_path, {"a/b.yaml": (b"nested", "s")}, {"s"})
    assert snapshot(tmp_path) == {"a": None, "a/b.yaml": b"nested"}
    write(tmp_path, {"a": (b"file again", "s")}, {"s"})
    assert snapshot(tmp_path) == {"a": b"file again"}


# -------------------------------------------------------------------------- ownership


def test_unowned_file_at_target_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.yaml").write_bytes(b"hand written\n")
    for force in (False, True):
        plan = writer.plan(tmp_path, {"d/a.yaml": (b"generated\n", "s"), "b.yaml": (b"b", "s")}, {"s"}, force=force)
        [error] = plan.conflicts
        assert error.file == str(tmp_path / "d/a.yaml") and (error.line, error.col) == (1, 1)
        assert "not owned by mlspec" in error.message and "delete it yourself" in error.hint
        with pytest.raises(SpecErrors):
            writer.apply(plan)
        assert (tmp_path / "d/a.yaml").read_bytes() == b"hand written\n"
        assert not (tmp_path / "b.yaml").exists()


def test_unowned_file_next_to_owned_survives_prune(tmp_path: Path) -> None:
    write(tmp_path, {"d/a.yaml": (b"a", "s"), "d/b.yaml": (b"b", "s")}, {"s"})
    (tmp_path / "d/mine.txt").write_bytes(b"mine")
    write(tmp_path, {}, {"s"})
    assert snapshot(tmp_path) == {"d": None, "d/mine.txt": b"mine"}


def test_hand_edited_file_conflicts_unless_forced(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": (b"v1\n", "s"), "gone.yaml": (b"g\n", "s")}, {"s"})
    (tmp_path / "a.yaml").write_bytes(b"edited\n")
    (tmp_path / "gone.yaml").write_bytes(b"edited too\n")
    outputs = {"a.yaml": (b"v2\n", "s")}

    plan = writer.plan(tmp_path, outputs, {"s"})
    assert sorted(Path(e.file).name for e in plan.conflicts) == ["a.yaml", "gone.yaml"]
    assert all("edited by hand" in e.message and "--force" in e.hint for e in plan.conflicts)
    with pytest.raises(SpecErrors) as raised:
        writer.apply(plan)
    assert len(raised.value) == 2
    assert (tmp_path / "a.yaml").read_bytes() == b"edited\n"
    assert (tmp_path / "gone.yaml").read_bytes() == b"edited too\n"

    result = write(tmp_path, outputs, {"s"}, force=True)
    assert result.updated == ["a.yaml"] and result.pruned == ["gone.yaml"]
    assert snapshot(tmp_path) == {"a.yaml": b"v2\n"}


def test_hand_edit_matching_new_content_is_no_conflict(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": (b"v1\n", "s")}, {"s"})
    (tmp_path / "a.yaml").write_bytes(b"v2\n")
    plan = writer.plan(tmp_path, {"a.yaml": (b"v2\n", "s")}, {"s"})
    assert plan.unchanged == ["a.yaml"] and plan.changed and not plan.conflicts
    writer.apply(plan)
    assert manifest(tmp_path)["files"]["a.yaml"]["sha256"] == sha256_hex(b"v2\n")


def test_invalid_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".mlspec").mkdir()
    (tmp_path / ".mlspec/manifest.json").write_text("{not json")
    with pytest.raises(SpecError, match="ownership manifest"):
        writer.plan(tmp_path, {}, {"s"})


# ------------------------------------------------------------------------ path safety


@pytest.mark.parametrize(
    "rel",
    ["/etc/passwd", "../x.yaml", "a/../../x.yaml", "a/../b.yaml", "a\\b.yaml", "a//b.yaml", "a/", "", "a\0b",
     "./a.yaml", ".mlspec/manifest.json", ".mlspec/x", ".MLSPEC/x"],
)
def test_path_escapes_are_refused(tmp_path: Path, rel: str) -> None:
    root = tmp_path / "out"
    plan = writer.plan(root, {rel: (b"x", "s"), "ok.yaml": (b"ok", "s")}, {"s"})
    [error] = plan.conflicts
    assert error.line == 1 and error.col == 1 and error.hint
    with pytest.raises(SpecErrors):
        writer.apply(plan)
    assert sorted(p.name for p in tmp_path.rglob("*") if ".mlspec" not in p.parts) == ["out"]


def test_symlinked_parent_pointing_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "out", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "deploy").symlink_to(outside)
    (root / "a").mkdir()
    (root / "a/inner").symlink_to(outside, target_is_directory=True)
    plan = writer.plan(root, {"deploy/x.yaml": (b"x", "s"), "a/inner/b/y.yaml": (b"y", "s")}, {"s"})
    assert len(plan.conflicts) == 2 and all("symbolic link" in e.message for e in plan.conflicts)
    with pytest.raises(SpecErrors):
        writer.apply(plan)
    assert list(outside.iterdir()) == []


def test_symlinked_parent_inside_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert writer.plan(tmp_path, {"alias/x.yaml": (b"x", "s")}, {"s"}).conflicts


def test_symlink_or_directory_at_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "victim").write_bytes(b"precious")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "victim")
    (tmp_path / "dir.yaml").mkdir()
    plan = writer.plan(tmp_path, {"link.yaml": (b"x", "s"), "dir.yaml": (b"y", "s")}, {"s"}, force=True)
    assert len(plan.conflicts) == 2
    with pytest.raises(SpecErrors):
        writer.apply(plan)
    assert (tmp_path / "victim").read_bytes() == b"precious"


def test_owned_path_replaced_by_symlink_is_not_pruned_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.yaml").write_bytes(b"x")
    root = tmp_path / "out"
    write(root, {"d/x.yaml": (b"x", "s")}, {"s"})
    shutil.rmtree(root / "d")
    (root / "d").symlink_to(outside)
    plan = writer.plan(root, {}, {"s"}, force=True)
    assert plan.conflicts and "symbolic link" in plan.conflicts[0].message
    assert (outside / "x.yaml").exists()


def test_directory_at_target_is_refused_unless_pruning_empties_it(tmp_path: Path) -> None:
    write(tmp_path, {"a/x.yaml": (b"x", "s"), "a/sub/y.yaml": (b"y", "s"), "b/z.yaml": (b"z", "s")}, {"s"})
    (tmp_path / "b/user.txt").write_text("mine")
    (tmp_path / "c").mkdir()
    plan = writer.plan(tmp_path, {"a": (b"file", "s"), "b": (b"file", "s"), "c": (b"file", "s")}, {"s"})
    assert sorted(Path(e.file).name for e in plan.conflicts) == ["b", "c"]
    (tmp_path / "a/sub/empty").mkdir()  # would survive pruning
    assert writer.plan(tmp_path, {"a": (b"file", "s")}, {"s"}).conflicts


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(SpecError, match="not a directory"):
        writer.plan(tmp_path / "out", {}, {"s"})
    with pytest.raises(SpecError, match="not a directory"):
        writer.apply(dataclasses.replace(writer.plan(tmp_path / "missing", {}, {"s"}), root=tmp_path / "out"))


def test_output_that_is_also_a_directory_is_refused(tmp_path: Path) -> None:
    plan = writer.plan(tmp_path, {"a": (b"x", "s"), "a/b.yaml": (b"y", "s")}, {"s"})
    assert [Path(e.file).name for e in plan.conflicts] == ["a"]


# ------------------------------------------------------------------------------ check


def test_check_lists_stale_missing_extra(tmp_path: Path) -> None:
    old = "\n".join(f"line {i}" for i in range(60)) + "\n"
    write(tmp_path, {"stale.yaml": (old.encode(), "s"), "gone.yaml": (b"g", "s"), "ok.yaml": (b"ok", "s")}, {"s"})
    new = old.replace("line 1\n", "line one\n").replace("line 5", "line five") + "extra\n" * 40
    outputs = {"stale.yaml": (new.encode(), "s"), "ok.yaml": (b"ok", "s"), "new.yaml": (b"n", "s")}
    plan = writer.plan(tmp_path, outputs, {"s"})
    before = mtimes(tmp_path)
    problems = writer.check(plan)
    assert mtimes(tmp_path) == before
    assert [(p.path, p.kind) for p in problems] == [
        ("new.yaml", "missing"), ("stale.yaml", "stale"), ("gone.yaml", "extra")
    ]
    diff = problems[1].diff.splitlines()
    assert diff[:2] == ["--- a/stale.yaml", "+++ b/stale.yaml"]
    assert "-line 1" in diff and "+line one" in diff
    assert len(diff) == writer.DIFF_LINES + 1 and diff[-1].startswith("... (")
    error = problems[0].to_error()
    assert error.file == str(tmp_path / "new.yaml") and error.code == "output-missing"


def test_check_is_clean_after_apply_and_reports_manifest_only_changes(tmp_path: Path) -> None:
    outputs = {"a.yaml": (b"a", "s")}
    write(tmp_path, outputs, {"s"})
    assert writer.check(writer.plan(tmp_path, outputs, {"s"})) == []
    [problem] = writer.check(writer.plan(tmp_path, {"a.yaml": (b"a", "t")}, {"t"}))
    assert (problem.path, problem.kind) == (".mlspec/manifest.json", "stale")
    assert '+      "scope": "t"' in problem.diff


def test_check_compares_content_of_unowned_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"same")
    plan = writer.plan(tmp_path, {"a.yaml": (b"same", "s")}, {"s"})
    assert plan.conflicts and writer.check(plan) == []


# --------------------------------------------------------------------------- recovery


OLD = {"keep.yaml": (b"keep", "s"), "d/change.yaml": (b"old", "s"), "d/gone.yaml": (b"gone", "s")}
NEW = {"keep.yaml": (b"keep", "s"), "d/change.yaml": (b"new", "s"), "n/added.yaml": (b"added", "s")}


def test_crash_before_commit_leaves_old_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, OLD, {"s"})
    old_tree, old_manifest = snapshot(tmp_path), manifest(tmp_path)
    crash_after(monkeypatch, 1)  # after staging the first file
    with pytest.raises(Crash):
        write(tmp_path, NEW, {"s"})
    assert (tmp_path / ".mlspec/txn").is_dir() and not (tmp_path / ".mlspec/journal.json").exists()
    monkeypatch.undo()
    assert writer.recover(tmp_path) == "discarded"
    assert snapshot(tmp_path) == old_tree and manifest(tmp_path) == old_manifest
    assert not (tmp_path / ".mlspec/txn").exists()


@pytest.mark.parametrize("crash_during_recovery", [False, True])
def test_crash_after_commit_rolls_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_during_recovery: bool
) -> None:
    reference = tmp_path / "reference"
    write(reference, OLD, {"s"})
    write(reference, NEW, {"s"})
    root = tmp_path / "root"
    write(root, OLD, {"s"})
    crash_after(monkeypatch, 6)  # 2 staged, journal written, committed, 1 deleted, 1 renamed
    with pytest.raises(Crash):
        write(root, NEW, {"s"})
    assert (root / ".mlspec/journal.json").exists()
    partial = snapshot(root)
    assert partial != snapshot(reference) and "d/gone.yaml" not in partial
    if crash_during_recovery:
        crash_after(monkeypatch, 1)
        with pytest.raises(Crash):
            writer.recover(root)
    monkeypatch.undo()
    assert writer.recover(root) == "rolled-forward"
    assert snapshot(root) == snapshot(reference)
    assert manifest(root) == manifest(reference)
    assert writer.recover(root) == "clean"


def test_every_entry_point_recovers_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, OLD, {"s"})
    crash_after(monkeypatch, 5)
    with pytest.raises(Crash):
        write(tmp_path, NEW, {"s"})
    monkeypatch.undo()
    plan = writer.plan(tmp_path, NEW, {"s"})
    assert not plan.changed and not (tmp_path / ".mlspec/journal.json").exists()
    assert writer.check(plan) == []


def test_journal_paths_must_stay_inside_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "out"
    write(root, OLD, {"s"})
    crash_after(monkeypatch, 4)  # just after the commit
    with pytest.raises(Crash):
        write(root, NEW, {"s"})
    monkeypatch.undo()
    journal_path = root / ".mlspec/journal.json"
    journal = json.loads(journal_path.read_text())
    journal["renames"][0]["path"] = "../escaped.yaml"
    journal_path.write_text(json.dumps(journal))
    with pytest.raises(SpecError, match="unsafe path"):
        writer.recover(root)
    assert not (tmp_path / "escaped.yaml").exists()


def test_apply_waits_for_the_lock(tmp_path: Path) -> None:
    write(tmp_path, OLD, {"s"})
    plan = writer.plan(tmp_path, NEW, {"s"})
    fd = os.open(tmp_path / ".mlspec/lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    worker = threading.Thread(target=writer.apply, args=(plan,))
    worker.start()
    try:
        time.sleep(0.2)
        assert worker.is_alive() and (tmp_path / "d/gone.yaml").exists()
    finally:
        os.close(fd)
    worker.join(timeout=10)
    assert not worker.is_alive() and not (tmp_path / "d/gone.yaml").exists()


# ------------------------------------------------------------------------- kill test

KILL_TRIALS = 24
KILL_SEED = 20240601


def _run_writer(root: Path, *, crash_at: int | None = None, delay: float | None = None) -> tuple[bool, float | None]:
    """Apply the "new" tree in a subprocess; returns (killed, seconds it took)."""
    env = {k: v for k, v in os.environ.items() if k != writer.CRASH_AT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    if crash_at is not None:
        env[writer.CRASH_AT_ENV] = str(crash_at)
    helper = Path(kill_trees.__file__)
    process = subprocess.Popen([sys.executable, str(helper), str(root)], env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    if delay is not None:
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
    output = process.stdout.read()
    code = process.wait(timeout=60)
    if code == -signal.SIGKILL:
        return True, None
    assert code == 0, output
    return False, float(output)


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_old_or_new_tree(tmp_path: Path) -> None:
    template = tmp_path / "template"
    write(template, kill_trees.old_outputs(), set(kill_trees.SCOPES) | {"other"})
    (template / "deploy/dev/m0/user-notes.txt").write_text("not mlspec's")
    old_tree, old_manifest = snapshot(template), manifest(template)

    reference = tmp_path / "reference"
    shutil.copytree(template, reference, symlinks=True)
    killed, duration = _run_writer(reference)
    assert not killed and duration is not None
    new_tree, new_manifest = snapshot(reference), manifest(reference)
    assert "deploy/legacy" in old_tree and "deploy/legacy" not in new_tree
    assert new_tree["deploy/dev/m0/user-notes.txt"] == b"not mlspec's"

    plan = writer.plan(template, kill_trees.new_outputs(), kill_trees.SCOPES)
    steps = 2 * (len(plan.create) + len(plan.update)) + len(plan.prune) + 5

    rng = random.Random(KILL_SEED)
    outcomes: list[tuple[str, str]] = []
    for trial in range(KILL_TRIALS):
        root = tmp_path / f"trial{trial}"
        shutil.copytree(template, root, symlinks=True)
        if trial % 2:
            _run_writer(root, crash_at=rng.randint(1, steps))
        else:
            _run_writer(root, delay=rng.uniform(0, 1.2 * duration))
        recovered = writer.recover(root)
        tree, owned = snapshot(root), manifest(root)
        assert tree in (old_tree, new_tree), f"trial {trial}: a mix of old and new"
        outcome = "old" if tree == old_tree else "new"
        assert owned == (old_manifest if outcome == "old" else new_manifest)
        for rel, entry in owned["files"].items():
            assert sha256_hex((root / rel).read_bytes()) == entry["sha256"]
        assert sorted(p.name for p in (root / ".mlspec").iterdir()) == [".gitignore", "lock", "manifest.json"]
        outcomes.append((outcome, recovered))
    assert {outcome for outcome, _ in outcomes} == {"old", "new"}
    assert ("new", "rolled-forward") in outcomes, "no trial was killed in the middle of renaming"

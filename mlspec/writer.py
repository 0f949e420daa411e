"""The only place that writes compiled output to disk.

Layout
    Every generated file lives under one output root (``mlspec compile --out DIR``).
    mlspec's own state lives in ``<root>/.mlspec/``:

    * ``manifest.json`` -- the ownership manifest, meant to be committed with the output::

          {"files": {"deploy/dev/churn/kubeflow/pipeline.yaml": {
              "scope": "churn@dev/kubeflow", "sha256": "...", "mlspec": "0.1.0",
              "target": "kubeflow", "spec": "examples/churn/mlops.yaml", "env": "dev",
              "inputs": "..."}},
           "version": 2}

      It lists every file mlspec wrote, with the SHA-256 of the bytes it wrote, the
      scope (an opaque string chosen by the compiler) that produced it, the mlspec
      version that wrote those bytes (kept while the bytes stay the same, so a release
      that changes no output changes no file) and whatever else the compiler records
      (``file_info``).  mlspec only ever overwrites or deletes files listed here, and
      only when they still hold what mlspec wrote (unless forced).  Version 1
      manifests (scope and sha256 only) are read as well;
    * ``cache.json`` -- what the last compile was made from, for skipping unchanged work
      (local state, not committed; a missing or broken cache only costs time);
    * ``lock`` -- an ``flock`` lock serialising mlspec processes on this root;
    * ``txn/``, ``journal.tmp``, ``journal.json`` -- a write in progress (see below);
    * ``.gitignore`` -- keeps all but the manifest out of git.

Writes are transactions
    :func:`apply` stages every new file in ``.mlspec/txn/`` (fsynced), writes a journal
    of the renames and deletions to perform, and commits by renaming ``journal.tmp`` to
    ``journal.json``.  Until then the tree is untouched.  It then moves the staged files
    into place one ``os.replace`` at a time, deletes pruned files, replaces the manifest
    and removes the journal.  Every entry point (:func:`plan`, :func:`check`,
    :func:`apply`, :func:`recover`) first completes a committed journal left by a crash
    (roll forward) or discards uncommitted staging, so every mlspec operation sees
    either the whole old tree or the whole new tree, even after ``SIGKILL`` or power loss.

Paths
    Output paths are relative POSIX paths.  Anything that could write outside the root
    is refused: absolute paths, ``.``/``..``/empty components, backslashes, NUL bytes,
    paths in ``.mlspec/``, and paths whose target or any existing parent directory is a
    symbolic link (wherever it points: the writer never follows links).
"""

from __future__ import annotations

import difflib
import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from mlspec import __version__
from mlspec.errors import SpecError, SpecErrors
from mlspec.render import dump_json, sha256_hex

__all__ = [
    "CRASH_AT_ENV",
    "crash_hook",
    "MANIFEST_PATH",
    "Owned",
    "Plan",
    "Problem",
    "Result",
    "apply",
    "check",
    "display",
    "owned_files",
    "plan",
    "interrupted",
    "read_cache",
    "read_owned",
    "read_runs",
    "remember",
    "recover",
]

STATE_DIR = ".mlspec"
#: The manifest's path relative to the output root.
MANIFEST_PATH = f"{STATE_DIR}/manifest.json"
CACHE_PATH = f"{STATE_DIR}/cache.json"
MANIFEST_VERSION = 2
READABLE_MANIFEST_VERSIONS = (1, 2)
JOURNAL_VERSION = 1
#: At most this many lines of unified diff per stale file in :func:`check`.
DIFF_LINES = 20

#: Test hook for the kill tests: with ``MLSPEC_WRITER_CRASH_AT=N`` in the environment,
#: a write (or a recovery) SIGKILLs its own process right after its N-th step (staging
#: a file, committing the journal, one rename or deletion, replacing the manifest, ...).
#: Unset, it costs one environment lookup per write.
CRASH_AT_ENV = "MLSPEC_WRITER_CRASH_AT"

_GITIGNORE = b"/lock\n/txn/\n/journal.tmp\n/journal.json\n/cache.json\n/cache.json.tmp\n"
_T = TypeVar("_T")


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Owned:
    """A manifest entry: what mlspec wrote at a path, for which scope, and the rest of
    the entry (``mlspec`` version, and the compiler's ``file_info``)."""

    sha256: str
    scope: str
    info: Mapping[str, Any] = field(default_factory=dict, compare=True)


@dataclass(frozen=True)
class Plan:
    """What :func:`apply` would do to ``root``; computed by :func:`plan`, writes nothing.

    ``create``: paths with no file yet; ``update``: owned files to rewrite (their content
    changes); ``unchanged``: owned files whose bytes are already right (their manifest
    entry may still change);
    ``prune``: owned files of the planned ``scopes`` that are no longer generated;
    ``conflicts``: why the plan cannot be applied (empty when it can).
    """

    root: Path
    outputs: Mapping[str, tuple[bytes, str]]
    scopes: frozenset[str]
    force: bool
    create: list[str]
    update: list[str]
    unchanged: list[str]
    prune: list[str]
    conflicts: list[SpecError]
    #: The manifest as found on disk, and as :func:`apply` would write it.
    manifest: Mapping[str, Owned]
    new_manifest: Mapping[str, Owned]
    #: SHA-256 of the regular file currently at each output or prunable path.
    on_disk: Mapping[str, str]
    #: What the compiler records per file besides scope and hash (see :func:`plan`).
    file_info: Mapping[str, Mapping[str, Any]] = None  # type: ignore[assignment]
    #: The no-op cache to store after applying (None: leave it as it is).
    cache: Mapping[str, Any] | None = None

    @property
    def changed(self) -> bool:
        """Whether applying the plan would write anything (the cache aside)."""
        return bool(self.create or self.update or self.prune or self.manifest != self.new_manifest)


@dataclass(frozen=True)
class Problem:
    """A difference between the output tree and what compiling would produce."""

    path: str  # relative to the root
    kind: Literal["stale", "missing", "extra"]
    file: str  # the path as the user sees it (root joined with path)
    diff: str = ""  # a short unified diff, for "stale"

    def to_error(self) -> SpecError:
        """This problem as a user-facing error."""
        return SpecError(
            _PROBLEM_MESSAGES[self.kind],
            file=self.file,
            hint="run `mlspec compile` and commit the result",
            code=f"output-{self.kind}",
        )


_PROBLEM_MESSAGES = {
    "stale": "generated file is out of date",
    "missing": "generated file is missing",
    "extra": "file is no longer generated and would be pruned",
}


@dataclass(frozen=True)
class Result:
    """What :func:`apply` did."""

    created: list[str]
    updated: list[str]
    pruned: list[str]
    unchanged: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.pruned)


# ------------------------------------------------------------------------ public API


def plan(
    root: Path | str,
    outputs: Mapping[str, tuple[bytes, str]],
    scopes: set[str] | frozenset[str],
    *,
    force: bool = False,
    file_info: Mapping[str, Mapping[str, Any]] | None = None,
    cache: Mapping[str, Any] | None = None,
) -> Plan:
    """Compare ``outputs`` (relative path -> (bytes, scope)) with the tree under ``root``.

    Files owned by a scope in ``scopes`` that are not in ``outputs`` are pruned; files
    of other scopes and files mlspec does not own are left alone.  ``force`` allows
    overwriting or pruning owned files that were edited by hand; nothing ever allows
    overwriting a file mlspec does not own or writing outside the root.

    ``file_info`` (path → JSON-able mapping, e.g. the target and the inputs hash) is
    recorded in each output's manifest entry, beside ``scope``, ``sha256`` and the
    ``mlspec`` version that wrote the bytes.  ``cache`` (scope → JSON-able data) is merged
    into ``.mlspec/cache.json`` by :func:`apply`: entries of the planned scopes are
    replaced, others kept.
    """
    root = Path(root)
    for rel, value in outputs.items():
        if not (
            isinstance(rel, str)
            and isinstance(value, tuple)
            and len(value) == 2
            and isinstance(value[0], bytes)
            and isinstance(value[1], str)
        ):
            raise TypeError(f"outputs must map str paths to (bytes, scope) tuples, got {rel!r}: {value!r:.80}")
    _check_root(root, create=False)
    frozen = dict(outputs)
    info = {rel: dict(value) for rel, value in (file_info or {}).items()}
    cached = None if cache is None else dict(cache)
    return _consistent_read(root, lambda: _compute_plan(root, frozen, frozenset(scopes), force, info, cached))


def check(plan: Plan) -> list[Problem]:
    """For ``mlspec compile --check``: how the tree differs from ``plan``'s outputs.

    Compares content only, whoever owns the files: ``missing`` (nothing there),
    ``stale`` (different bytes; with a diff of at most :data:`DIFF_LINES` lines) and
    ``extra`` (an owned file :func:`apply` would prune).  When the files are all right
    but the manifest would change, the manifest itself is reported stale.  Conflicts
    are not repeated here; they are in ``plan.conflicts``.  Writes nothing, except to
    complete a write that a crash interrupted.
    """
    return _consistent_read(plan.root, lambda: _problems(plan, limit=DIFF_LINES))


def read_cache(root: Path | str) -> dict[str, Any]:
    """The no-op cache of ``root`` (``{}`` when absent or unreadable: it is only a cache)."""
    scopes = _read_cache_document(Path(root)).get("scopes")
    return scopes if isinstance(scopes, dict) else {}


#: How many compile requests :func:`remember` keeps records of.
MAX_RUNS = 16


def _read_cache_document(root: Path) -> dict[str, Any]:
    raw = _read_regular(root / CACHE_PATH)
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_runs(root: Path | str) -> dict[str, Any]:
    """The records of recent compile requests (see :mod:`mlspec.uptodate`); ``{}`` if none."""
    runs = _read_cache_document(Path(root)).get("runs")
    return runs if isinstance(runs, dict) else {}


def _store_cache(root: Path, document: dict[str, Any]) -> None:
    data = dump_json(document).encode("utf-8")
    if _read_regular(root / CACHE_PATH) == data:
        return
    tmp = root / f"{CACHE_PATH}.tmp"
    _write_durably(tmp, data)
    os.replace(tmp, root / CACHE_PATH)


def _write_cache(root: Path, plan: Plan) -> None:
    """Merge the plan's cache entries into ``cache.json`` (atomically; the caller holds the lock)."""
    if plan.cache is None:
        return
    document = _read_cache_document(root)
    old = document.get("scopes") if isinstance(document.get("scopes"), dict) else {}
    scopes = {k: v for k, v in old.items() if k not in plan.scopes}
    scopes.update({k: v for k, v in plan.cache.items() if k in plan.scopes})
    document["scopes"] = dict(sorted(scopes.items()))
    if plan.changed:
        document.pop("runs", None)  # the tree changed: every other request must look again
    _store_cache(root, document)


def remember(root: Path | str, key: str, record: Mapping[str, Any]) -> None:
    """Keep ``record`` for compile request ``key`` in the cache (the newest :data:`MAX_RUNS`)."""
    root = Path(root)
    with _ExclusiveLock(root):
        document = _read_cache_document(root)
        runs = {k: v for k, v in (document.get("runs") or {}).items() if k != key}
        runs[key] = dict(record)
        document["runs"] = dict(list(runs.items())[-MAX_RUNS:])
        _store_cache(root, document)


def interrupted(root: Path | str) -> bool:
    """Whether a write into ``root`` was interrupted and awaits recovery."""
    return _pending(Path(root))


def apply(plan: Plan) -> Result:
    """Make the tree match ``plan``, atomically; raise :class:`SpecErrors` on conflicts.

    The plan is recomputed under the lock, so changes made since :func:`plan` ran are
    taken into account.  When nothing changes, nothing is written (mtimes included).
    """
    root = plan.root
    _check_root(root, create=True)
    with _ExclusiveLock(root):
        _recover_locked(root, _crash_hook())
        fresh = _recompute(plan)
        if fresh.conflicts:
            raise SpecErrors(fresh.conflicts)
        if fresh.changed:
            step = _crash_hook()
            journal = _stage(fresh, step)
            _roll_forward(root, journal, step)
            _finish(root, step)
        _write_cache(root, fresh)
    return Result(created=fresh.create, updated=fresh.update, pruned=fresh.prune, unchanged=fresh.unchanged)


def recover(root: Path | str) -> str:
    """Finish or discard a write that a crash interrupted.

    Returns ``"rolled-forward"`` (a committed write was completed: the tree is new),
    ``"discarded"`` (an uncommitted one was dropped: the tree is old) or ``"clean"``.
    """
    root = Path(root)
    _check_root(root, create=False)
    if not _pending(root):
        return "clean"
    with _ExclusiveLock(root):
        return _recover_locked(root, _crash_hook())


def display(root: Path, rel: str) -> str:
    """``rel`` as the user sees it (joined as text: an absolute ``rel`` stays below root).  Below
    the current folder it has no ``./`` prefix: GitHub does not place an annotation whose file
    starts with ``./`` on the pull request (crate-ci/typos#1496)."""
    return rel if str(root) in ("", ".") else f"{root}/{rel}"


# -------------------------------------------------------------------------- planning


def _recompute(plan: Plan) -> Plan:
    return _compute_plan(plan.root, plan.outputs, plan.scopes, plan.force, plan.file_info, plan.cache)


def _compute_plan(root: Path, outputs: Mapping[str, tuple[bytes, str]], scopes: frozenset[str], force: bool,
                  file_info: Mapping[str, Mapping[str, Any]], cache: Mapping[str, Any] | None) -> Plan:
    """The plan, from the manifest and the files on disk (the caller holds the lock)."""
    manifest = _read_manifest(root)
    conflicts: list[SpecError] = []
    create: list[str] = []
    update: list[str] = []
    unchanged: list[str] = []
    prune: list[str] = []
    on_disk: dict[str, str] = {}
    candidates = sorted(rel for rel, owned in manifest.items() if owned.scope in scopes and rel not in outputs)
    removable = frozenset(candidates)
    output_dirs = {rel.rsplit("/", depth)[0] for rel in outputs for depth in range(1, rel.count("/") + 1)}

    def conflict(rel: str, message: str, hint: str) -> None:
        conflicts.append(SpecError(message, file=display(root, rel), hint=hint, code="output-conflict"))

    for rel in sorted(outputs):
        data, scope = outputs[rel]
        reason = _path_error(rel) or ("is also a directory of other outputs" if rel in output_dirs else None)
        if reason:
            conflict(rel, f"refusing to write {rel!r}: the path {reason}", _PATH_HINT)
            continue
        blocked, digest = _inspect(root, rel, removable=removable)
        if blocked:
            conflict(rel, f"refusing to write {rel}: {blocked}", _LINK_HINT)
            continue
        new = sha256_hex(data)
        owned = manifest.get(rel)
        if digest is None:
            create.append(rel)
            continue
        on_disk[rel] = digest
        if owned is None:
            conflict(
                rel,
                f"{rel} exists but is not owned by mlspec (it is not in {MANIFEST_PATH}); refusing to overwrite it",
                "move it away or delete it yourself, then compile again",
            )
        elif digest not in (owned.sha256, new) and not force:
            conflict(
                rel,
                f"{rel} was edited by hand since mlspec generated it; refusing to overwrite it",
                "move the change into the spec, or compile with --force to discard it",
            )
        elif digest == new:
            unchanged.append(rel)
        else:
            update.append(rel)

    for rel in candidates:
        owned = manifest[rel]
        reason = _path_error(rel)
        if reason:
            conflict(rel, f"{MANIFEST_PATH} lists {rel!r}, whose path {reason}; refusing to delete it", _PATH_HINT)
            continue
        blocked, digest = _inspect(root, rel, deleting=True)
        if blocked:
            conflict(rel, f"refusing to delete {rel}: {blocked}", _LINK_HINT)
            continue
        if digest is not None:
            on_disk[rel] = digest
            if digest != owned.sha256 and not force:
                conflict(
                    rel,
                    f"{rel} is no longer generated but was edited by hand since; refusing to delete it",
                    "delete it yourself, or compile with --force to delete it",
                )
                continue
        prune.append(rel)

    new_manifest = {rel: owned for rel, owned in manifest.items() if rel not in prune}
    for rel, (data, scope) in outputs.items():
        digest = sha256_hex(data)
        old = manifest.get(rel)
        # The version that wrote these bytes: kept while the bytes stay the same.
        version = old.info.get("mlspec") if old is not None and old.sha256 == digest else None
        info = {**file_info.get(rel, {}), "mlspec": version or __version__}
        new_manifest[rel] = Owned(digest, scope, info)
    return Plan(
        root=root,
        outputs=outputs,
        scopes=scopes,
        force=force,
        create=create,
        update=update,
        unchanged=unchanged,
        prune=prune,
        conflicts=conflicts,
        manifest=manifest,
        new_manifest=dict(sorted(new_manifest.items())),
        on_disk=on_disk,
        file_info=file_info,
        cache=cache,
    )


_PATH_HINT = "output paths must be relative POSIX paths inside the output directory"
_LINK_HINT = (
    "mlspec never writes through symbolic links or over directories; "
    "replace it with a plain directory or move it away"
)


def _path_error(rel: str) -> str | None:
    """Why ``rel`` is not a safe relative output path, or None."""
    if rel == "":
        return "is empty"
    if "\0" in rel:
        return "contains a NUL byte"
    if "\\" in rel:
        return "contains a backslash (use '/')"
    if rel.startswith("/"):
        return "is absolute"
    parts = rel.split("/")
    if "" in parts:
        return "has an empty component"
    if "." in parts or ".." in parts:
        return "has a '.' or '..' component"
    if parts[0].casefold() == STATE_DIR:
        return f"is inside mlspec's state directory {STATE_DIR}/"
    return None


def _inspect(
    root: Path, rel: str, *, removable: frozenset[str] = frozenset(), deleting: bool = False
) -> tuple[str | None, str | None]:
    """``(why the path is blocked, SHA-256 of the regular file there)``; both None if free.

    Parent directories are walked with ``lstat``, never followed: a symbolic link on the
    way blocks the path.  So does a parent that is not a directory, unless it is in
    ``removable`` (an owned file the same write prunes) or we are ``deleting`` (then
    there is simply nothing to delete), and a directory at the path itself, unless
    all it holds are ``removable`` files (pruning then removes it).
    """
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        try:
            mode = os.lstat(root / parent).st_mode
        except FileNotFoundError:
            return None, None
        if stat.S_ISLNK(mode):
            return f"its parent directory {parent} is a symbolic link", None
        if not stat.S_ISDIR(mode):
            if deleting or parent in removable:
                return None, None
            return f"its parent {parent} is not a directory", None
    try:
        mode = os.lstat(root / rel).st_mode
    except FileNotFoundError:
        return None, None
    if stat.S_ISLNK(mode):
        return "it is a symbolic link", None
    if stat.S_ISDIR(mode) and not deleting:
        if _only_removable(root, rel, removable):
            return None, None
        return "it is a directory holding files that are not being pruned", None
    if not stat.S_ISREG(mode):
        return "it is a directory or special file", None
    return None, sha256_hex(_read_regular(root / rel) or b"")


def _only_removable(root: Path, rel: str, removable: frozenset[str]) -> bool:
    """Whether pruning empties the directory ``rel`` so that it gets removed: it holds
    only ``removable`` files and directories that have such files inside."""
    directories: set[str] = set()
    emptied: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root / rel):  # never follows links
        base = Path(dirpath).relative_to(root).as_posix()
        directories.add(base)
        if any(os.path.islink(os.path.join(dirpath, name)) for name in dirnames):
            return False
        for name in filenames:
            if f"{base}/{name}" not in removable:
                return False
            directory = base
            while directory not in emptied and directory != rel:
                emptied.add(directory)
                directory = directory.rsplit("/", 1)[0]
            emptied.add(rel)
    return directories == emptied


# ----------------------------------------------------------------------------- check


def _problems(plan: Plan, *, limit: int | None) -> list[Problem]:
    """:func:`check`'s findings, with diffs of changed files cut to ``limit`` lines."""
    root = plan.root
    fresh = _recompute(plan)
    found: list[Problem] = []
    for rel, (data, _scope) in sorted(fresh.outputs.items()):
        digest = fresh.on_disk.get(rel)
        if digest is None:
            found.append(Problem(rel, "missing", display(root, rel), ""))
        elif digest != sha256_hex(data):
            text = _diff(rel, _read_regular(root / rel) or b"", data, limit)
            found.append(Problem(rel, "stale", display(root, rel), text))
    for rel, owned in sorted(fresh.manifest.items()):
        if owned.scope in fresh.scopes and rel not in fresh.outputs and rel in fresh.on_disk:
            found.append(Problem(rel, "extra", display(root, rel), ""))
    if not found and fresh.changed and not fresh.conflicts:
        old = _read_regular(root / MANIFEST_PATH) or b""
        text = _diff(MANIFEST_PATH, old, _manifest_bytes(fresh.new_manifest), limit)
        found.append(Problem(MANIFEST_PATH, "stale", display(root, MANIFEST_PATH), text))
    return found


def _diff(rel: str, old: bytes | None, new: bytes | None, limit: int | None) -> str:
    """A unified diff, as git shows it (None: the file does not exist), cut to ``limit`` lines."""
    lines = list(
        difflib.unified_diff(
            _diff_lines(old),
            _diff_lines(new),
            "/dev/null" if old is None else f"a/{rel}",
            "/dev/null" if new is None else f"b/{rel}",
        )
    )
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more diff lines)\n"]
    return "".join(lines)


def _diff_lines(data: bytes | None) -> list[str]:
    """``data``'s lines, each ending in a newline; a missing final one is marked."""
    lines = [line + "\n" for line in (data or b"").decode("utf-8", "replace").split("\n")]
    if lines[-1] == "\n":
        lines.pop()
    else:
        lines[-1] += "\\ No newline at end of file\n"
    return lines


# ------------------------------------------------------------------- manifest, files


def _manifest_bytes(files: Mapping[str, Owned]) -> bytes:
    document = {
        "version": MANIFEST_VERSION,
        "files": {rel: {**owned.info, "sha256": owned.sha256, "scope": owned.scope} for rel, owned in files.items()},
    }
    return dump_json(document).encode("utf-8")


def owned_files(root: Path | str) -> dict[str, Owned]:
    """The manifest's files, as recorded (read-only; ``{}`` without a manifest)."""
    return _read_manifest(Path(root))


def read_owned(root: Path | str, rel: str, sha256: str) -> bytes | None:
    """The bytes of owned file ``rel`` if it still holds exactly ``sha256``, else None."""
    root = Path(root)
    if _path_error(rel) or _inspect(root, rel)[0]:
        return None
    data = _read_regular(root / rel)
    return data if data is not None and sha256_hex(data) == sha256 else None


def _read_manifest(root: Path) -> dict[str, Owned]:
    path = root / MANIFEST_PATH
    try:
        raw = _read_regular(path, missing_ok=False)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _manifest_error(root, f"cannot read it: {exc.strerror or exc}") from exc
    if raw is None:
        raise _manifest_error(root, "it is not a regular file")
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise _manifest_error(root, f"it is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("version") not in READABLE_MANIFEST_VERSIONS:
        raise _manifest_error(root, f"it is not a version {MANIFEST_VERSION} mlspec manifest")
    files = document.get("files")
    if not isinstance(files, dict):
        raise _manifest_error(root, "its 'files' is not an object")
    manifest: dict[str, Owned] = {}
    for rel, entry in files.items():
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        scope = entry.get("scope") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and len(digest) == 64 and isinstance(scope, str)):
            raise _manifest_error(root, f"its entry for {rel!r} needs a 'sha256' and a 'scope'")
        info = {k: v for k, v in entry.items() if k not in ("sha256", "scope")}
        manifest[rel] = Owned(digest, scope, info)
    return manifest


def _manifest_error(root: Path, reason: str) -> SpecError:
    return SpecError(
        f"cannot use the ownership manifest: {reason}",
        file=display(root, MANIFEST_PATH),
        hint="restore it from version control; without it mlspec cannot tell which files it may change",
        code="manifest-invalid",
    )


def _read_regular(path: Path, *, missing_ok: bool = True) -> bytes | None:
    """The bytes of the regular file at ``path`` without following a final symlink;
    None if it is something else (or missing, with ``missing_ok``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _sha_of(path: Path) -> str | None:
    data = _read_regular(path)
    return None if data is None else sha256_hex(data)


def _write_file(path: Path, data: bytes, *, durably: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durably:
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    _write_file(path, data, durably=True)


def _syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # pragma: no cover - a libc without syncfs
        return None


def _sync_staged(txn: Path, files: list[Path]) -> None:
    """Make the staged files and the staging directory durable before the journal commits.

    One ``syncfs`` of the output root's file system instead of an ``fsync`` per file: a
    compile of a large monorepo stages thousands of files, and each fsync costs about a
    millisecond.  Where ``syncfs`` is missing or fails, every file is fsynced."""
    sync = _syncfs()
    fd = os.open(txn, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if sync is not None and sync(fd) == 0:
            return
        for path in files:
            file_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directories(root: Path, directories: set[Path]) -> None:
    """Make the renames and deletions in ``directories`` durable: one ``syncfs`` of the output
    root's file system (a new spec folder alone adds several directories), else an ``fsync``
    of each directory."""
    sync = _syncfs()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if sync is not None and sync(fd) == 0:
            return
    finally:
        os.close(fd)
    for directory in sorted(directories):
        if directory.is_dir():
            _fsync_dir(directory)


def _check_root(root: Path, *, create: bool) -> None:
    """Refuse an output root that exists but is not a directory; create it if asked."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        elif os.path.lexists(root) and not root.is_dir():
            raise NotADirectoryError(root)
    except (FileExistsError, NotADirectoryError) as exc:
        raise SpecError(
            "the output directory is not a directory", file=str(root), hint="choose another --out", code="output-root"
        ) from exc


# --------------------------------------------------------------------------- locking


def _state_dir(root: Path, *, create: bool) -> Path:
    """``<root>/.mlspec``, checked to be a real directory if it exists (or is created)."""
    state = root / STATE_DIR
    if create:
        try:
            os.mkdir(state)
        except FileExistsError:
            pass
        if _read_regular(state / ".gitignore") != _GITIGNORE and not os.path.islink(state / ".gitignore"):
            _write_durably(state / ".gitignore", _GITIGNORE)  # new, or from an older mlspec
    try:
        mode = os.lstat(state).st_mode
    except FileNotFoundError:
        return state
    if not stat.S_ISDIR(mode):
        raise SpecError(
            f"{STATE_DIR} is not a directory (is it a symbolic link?)",
            file=str(state),
            hint=f"remove it; mlspec keeps its ownership manifest in {STATE_DIR}/",
            code="output-root",
        )
    return state


def _pending(root: Path) -> bool:
    """Whether a write was interrupted (a journal or staging area is left)."""
    state = root / STATE_DIR
    return any(os.path.lexists(state / name) for name in ("journal.json", "journal.tmp", "txn"))


class _ExclusiveLock:
    """``with _ExclusiveLock(root):`` -- hold the root's lock, creating it if needed.

    A class rather than ``@contextmanager``: that one re-raises by assigning
    ``__traceback__``, which a frozen :class:`SpecError` refuses.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._fd = -1

    def __enter__(self) -> None:
        state = _state_dir(self._root, create=True)
        self._fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)


def _consistent_read(root: Path, read: Callable[[], _T]) -> _T:
    """``read()`` while no other mlspec process writes, after completing an interrupted write.

    Takes a shared lock, so that reading writes nothing.  Without a lock file no write
    has ever started here; reading then needs no lock if the file is still absent
    afterwards (a write creates it before touching anything).
    """
    lock = root / STATE_DIR / "lock"
    while True:
        if _pending(root):
            with _ExclusiveLock(root):
                _recover_locked(root, _crash_hook())
                return read()
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            result = read()
            if not os.path.lexists(lock):
                return result
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not _pending(root):
                return read()
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- transactions


def _crash_hook(variable: str = CRASH_AT_ENV) -> Callable[[], None]:
    """A ``step()`` callback implementing :data:`CRASH_AT_ENV` (or another variable of the
    same meaning, e.g. the spec editor's): SIGKILL the process after its N-th step."""
    limit = os.environ.get(variable)
    if not limit:
        return lambda: None
    remaining = [int(limit)]

    def step() -> None:
        remaining[0] -= 1
        if remaining[0] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return step


def _stage(fresh: Plan, step: Callable[[], None]) -> dict[str, Any]:
    """Stage the new files and manifest, then commit the journal; returns the journal."""
    state = fresh.root / STATE_DIR
    txn = state / "txn"
    os.mkdir(txn)
    renames = []
    for index, rel in enumerate(sorted(fresh.create + fresh.update)):
        data = fresh.outputs[rel][0]
        digest = sha256_hex(data)
        if fresh.on_disk.get(rel) == digest:
            continue  # only its manifest entry changes
        staged = f"{index:06d}"
        _write_file(txn / staged, data)
        renames.append({"staged": staged, "path": rel, "sha256": digest})
        step()
    manifest = _manifest_bytes(fresh.new_manifest)
    _write_file(txn / "manifest.json", manifest)
    _sync_staged(txn, [txn / r["staged"] for r in renames] + [txn / "manifest.json"])
    journal = {
        "version": JOURNAL_VERSION,
        "renames": renames,
        "deletes": [{"path": rel, "sha256": fresh.on_disk[rel]} for rel in fresh.prune if rel in fresh.on_disk],
        "manifest_sha256": sha256_hex(manifest),
    }
    _write_durably(state / "journal.tmp", dump_json(journal).encode("utf-8"))
    step()
    os.replace(state / "journal.tmp", state / "journal.json")  # the commit point
    _fsync_dir(state)
    step()
    return journal


def _roll_forward(root: Path, journal: dict[str, Any], step: Callable[[], None]) -> None:
    """Perform a committed journal's operations; idempotent, so safe to repeat."""
    state = root / STATE_DIR
    txn = state / "txn"
    touched: set[Path] = {state}
    for entry in journal["deletes"]:
        rel = entry["path"]
        if _inspect(root, rel, deleting=True)[1] == entry["sha256"]:
            # Still what mlspec planned to delete.  Anything else was put there after
            # the crash and is no longer mlspec's to delete.
            os.unlink(root / rel)
            touched.add((root / rel).parent)
            step()
    touched |= _remove_empty_parents(root, [entry["path"] for entry in journal["deletes"]])
    for entry in journal["renames"]:
        rel, staged = entry["path"], txn / entry["staged"]
        if os.path.lexists(staged):
            touched |= _make_parents(root, rel)
            os.replace(staged, root / rel)
            step()
        elif _sha_of(root / rel) != entry["sha256"]:
            raise _journal_error(root, f"the staged copy of {rel} is gone")
    staged_manifest = txn / "manifest.json"
    if os.path.lexists(staged_manifest):
        os.replace(staged_manifest, root / MANIFEST_PATH)
        step()
    elif _sha_of(root / MANIFEST_PATH) != journal["manifest_sha256"]:
        raise _journal_error(root, "the staged manifest is gone")
    _sync_directories(root, touched)


def _finish(root: Path, step: Callable[[], None]) -> None:
    """Drop a fully applied journal, then its staging area."""
    state = root / STATE_DIR
    os.unlink(state / "journal.json")
    _fsync_dir(state)
    step()
    shutil.rmtree(state / "txn")


def _recover_locked(root: Path, step: Callable[[], None]) -> str:
    state = _state_dir(root, create=False)
    journal_path = state / "journal.json"
    if os.path.lexists(journal_path):
        journal = _load_journal(root, journal_path)
        _roll_forward(root, journal, step)
        _finish(root, step)
        return "rolled-forward"
    leftovers = False
    if os.path.lexists(state / "journal.tmp"):
        os.unlink(state / "journal.tmp")
        leftovers = True
    if os.path.lexists(state / "txn"):
        shutil.rmtree(state / "txn")
        leftovers = True
    return "discarded" if leftovers else "clean"


def _load_journal(root: Path, path: Path) -> dict[str, Any]:
    """The committed journal, checked to be well-formed and to stay inside the root
    (the output directory may come from an untrusted git checkout)."""
    try:
        journal = json.loads((_read_regular(path) or b"").decode("utf-8"))
        if not isinstance(journal, dict) or journal.get("version") != JOURNAL_VERSION:
            raise ValueError("not a version 1 journal")
        entries = [*journal["renames"], *journal["deletes"]]
        digests = [entry["sha256"] for entry in entries] + [journal["manifest_sha256"]]
        if not all(isinstance(d, str) and len(d) == 64 for d in digests):
            raise ValueError("bad sha256")
        for entry in entries:
            if _path_error(entry["path"]):
                raise ValueError(f"unsafe path {entry['path']!r}")
        if not all(str(entry["staged"]).isdigit() for entry in journal["renames"]):
            raise ValueError("bad staged file name")
    except (ValueError, KeyError, TypeError) as exc:
        raise _journal_error(root, f"the journal is invalid ({exc})") from exc
    return journal


def _journal_error(root: Path, reason: str) -> SpecError:
    return SpecError(
        f"cannot finish the interrupted write: {reason}",
        file=display(root, f"{STATE_DIR}/journal.json"),
        hint=(
            "restore the output directory from version control, "
            f"then delete {STATE_DIR}/journal.json and {STATE_DIR}/txn/"
        ),
        code="journal-invalid",
    )


def _make_parents(root: Path, rel: str) -> set[Path]:
    """Create ``rel``'s missing parent directories, refusing symbolic links on the way.

    Returns the directories whose entries changed (for fsync)."""
    changed: set[Path] = set()
    current = root
    for part in rel.split("/")[:-1]:
        parent, current = current, current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            os.mkdir(current)
            changed.add(parent)
            continue
        if not stat.S_ISDIR(mode):
            raise _journal_error(root, f"{current.relative_to(root)} is no longer a plain directory")
    changed.add(current)
    return changed


def _remove_empty_parents(root: Path, rels: list[str]) -> set[Path]:
    """Remove the parent directories of pruned files that are now empty, deepest first.

    ``os.rmdir`` only removes empty directories (and never follows a link), so a
    directory holding anything at all -- a user's file, another output -- stays.
    Returns the directories whose entries changed (for fsync)."""
    candidates = {"/".join(rel.split("/")[:depth]) for rel in rels for depth in range(1, rel.count("/") + 1)}
    changed: set[Path] = set()
    for directory in sorted(candidates, key=lambda d: (-d.count("/"), d)):
        try:
            os.rmdir(root / directory)
        except OSError:
            continue
        changed.add((root / directory).parent)
    return changed


#: For other writers of mlspec (the spec editor): the same crash hook, on their own variable.
crash_hook = _crash_hook

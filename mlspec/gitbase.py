"""Files as they are at a git revision, read from git's objects: the base side of ``mlspec diff --base``.

Nothing here checks anything out or writes to the repository: the revision's tree is
listed once (``git ls-tree -r -z``), the blobs that are needed are read through one
``git cat-file --batch`` process, and :meth:`Tree.materialize` writes them into a folder
the caller owns (a temporary directory outside the work tree).  Every git command runs
with ``GIT_OPTIONAL_LOCKS=0``, so not even the index's stat cache is refreshed: the work
tree and the index are exactly as they were.

Work-tree files are compared with the revision's by *blob id* -- what ``git hash-object``
computes (``sha1`` or ``sha256`` of ``blob <size>\\0<bytes>``, per the repository's object
format) -- so a file that is the same on both sides is never read from git at all.  A
file that git stores through a clean filter (``core.autocrlf``, LFS) hashes differently
from its work-tree bytes and is taken as changed: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import SpecError

#: The environment of every git command: no optional locks (``git status`` and friends
#: would otherwise refresh the index), no prompts, no pager, untranslated messages.
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
#: ls-tree modes of files (regular, executable, symbolic link).
FILE_MODES = ("100644", "100755", "120000")


def _git(args: list[str], cwd: Path, *, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True,
                              env={**os.environ, **GIT_ENV}, check=False)
    except FileNotFoundError as exc:
        raise SpecError("git is not installed (mlspec diff --base reads the base from git)", "--base",
                        hint="install git, or compare with a folder: --against DIR", code="git") from exc


def _usage(message: str, hint: str) -> SpecError:
    return SpecError(message, "--base", hint=hint, code="bad-ref")


def toplevel(start: Path) -> Path:
    """The top folder of the git work tree that holds ``start``."""
    folder = start if start.is_dir() else start.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    proc = _git(["rev-parse", "--show-toplevel"], folder)
    if proc.returncode != 0:
        raise _usage(f"{folder} is not in a git repository", "--base compares with a git revision; "
                     "outside git, compare with a folder of committed output: --against DIR")
    return Path(proc.stdout.decode().strip()).resolve()


def blob_id(data: bytes, object_format: str = "sha1") -> str:
    """The id git gives a blob with these bytes (``git hash-object``)."""
    digest = hashlib.new(object_format)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


@dataclass
class Tree:
    """The files of one commit: path (relative to the top level, POSIX) → (mode, blob id)."""

    ref: str
    commit: str
    top: Path
    object_format: str
    files: dict[str, tuple[str, str]]
    dirs: set[str] = field(default_factory=set)

    def blob(self, rel: str) -> str | None:
        entry = self.files.get(rel)
        return entry[1] if entry else None

    def is_dir(self, rel: str) -> bool:
        return rel in self.dirs

    def listdir(self, rel: str) -> list[str]:
        """Names of the files directly in folder ``rel`` ("" for the top level)."""
        prefix = f"{rel}/" if rel else ""
        return sorted(p[len(prefix):] for p in self.files
                      if p.startswith(prefix) and "/" not in p[len(prefix):])

    def under(self, rel: str) -> list[str]:
        """Every file path below folder ``rel`` ("" for all)."""
        prefix = f"{rel}/" if rel else ""
        return sorted(p for p in self.files if p.startswith(prefix))

    def read(self, paths: list[str]) -> dict[str, bytes]:
        """The bytes of each of ``paths`` at this commit, through one ``git cat-file --batch``."""
        wanted = [p for p in dict.fromkeys(paths) if p in self.files]
        if not wanted:
            return {}
        ids = [self.files[p][1] for p in wanted]
        proc = _git(["cat-file", "--batch"], self.top, stdin="".join(f"{i}\n" for i in ids).encode())
        if proc.returncode != 0:
            raise _usage(f"could not read {self.ref} from git: {proc.stderr.decode(errors='replace').strip()}",
                         "is the repository complete (a shallow or partial clone may lack the base's objects)?")
        out, data, pos = {}, proc.stdout, 0
        for path, oid in zip(wanted, ids):
            end = data.index(b"\n", pos)
            header = data[pos:end].split()
            if len(header) != 3 or header[0].decode() != oid:
                raise _usage(f"git could not read {path} at {self.ref}: {data[pos:end].decode(errors='replace')}",
                             "is the repository complete (a shallow or partial clone may lack the base's objects)?")
            size = int(header[2])
            out[path] = data[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
        return out

    def materialize(self, paths: list[str], dest: Path) -> None:
        """Write ``paths`` as they are at this commit below ``dest`` (symbolic links as
        the files they point to inside the commit, else skipped)."""
        for rel, data in self.read(paths).items():
            if self.files[rel][0] == "120000":  # a symbolic link: follow it inside the tree, once
                target = PurePosixPath(rel).parent / data.decode(errors="replace")
                target_rel = os.path.normpath(target.as_posix())
                if target_rel.startswith("..") or target_rel not in self.files or self.files[target_rel][0] == "120000":
                    continue
                data = self.read([target_rel])[target_rel]
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def open_tree(top: Path, ref: str) -> Tree:
    """List the files of commit ``ref`` of the repository at ``top``."""
    if not ref or ref.startswith("-"):
        raise _usage(f"'{ref}' is not a git revision", "give a branch, tag or commit, e.g. --base origin/main")
    proc = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], top)
    if proc.returncode != 0:
        raise _usage(f"unknown git revision '{ref}'",
                     "give a branch, tag or commit that exists here (in CI, fetch it first: "
                     "actions/checkout with fetch-depth: 0, or git fetch origin <branch>)")
    commit = proc.stdout.decode().strip()
    fmt = _git(["rev-parse", "--show-object-format"], top)
    object_format = fmt.stdout.decode().strip() if fmt.returncode == 0 and fmt.stdout.strip() else "sha1"
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", commit], top)
    if listing.returncode != 0:
        raise _usage(f"could not list {ref}: {listing.stderr.decode(errors='replace').strip()}",
                     "is the repository complete?")
    files: dict[str, tuple[str, str]] = {}
    dirs: set[str] = {""}
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind != "blob" or mode not in FILE_MODES:
            continue  # submodules
        path = raw_path.decode("utf-8", errors="surrogateescape")
        files[path] = (mode, oid)
        parts = path.split("/")
        for depth in range(1, len(parts)):
            dirs.add("/".join(parts[:depth]))
    return Tree(ref, commit, top, object_format, files, dirs)


def worktree_blob(path: Path, object_format: str = "sha1") -> str | None:
    """The blob id of the work-tree file at ``path`` (None when it is not a regular file)."""
    try:
        if not path.is_file():
            return None
        return blob_id(path.read_bytes(), object_format)
    except OSError:
        return None

"""GitHub target: the pull-request checks of the users' GitOps repository.

A repository-scope target: one file for the whole project, written at the output root,
``.github/workflows/mlspec.yaml``.  GitHub reads workflows only from ``.github/workflows/``
at the top of the repository, so this target is for the usual GitOps layout where
``mlspec compile`` writes into the repository itself (``--out`` is the repository root).
Like every repository-scope output it is generated only by a compile of the whole project
(``mlspec compile`` at the project root).

The workflow, on ``pull_request`` (never ``pull_request_target``: the pull request's code
runs with a read-only token and no secrets), filtered by ``paths:`` to the specs' folders,
any new ``mlops.yaml``, ``environments/**``, the output (``deploy/**``, ``argocd/**``, ``.mlspec/**``) and
the workflow itself:

``check`` (``contents: read``)
    checks out the merge commit with the full history (``fetch-depth: 0``: the merge base
    must be there) and ``persist-credentials: false``; installs Python and mlspec at an
    exact version; runs ``mlspec validate --format github`` (annotations on the pull
    request), ``mlspec compile --check --out "$GITHUB_WORKSPACE" --format github`` (the
    committed output is current), then ``mlspec diff --base <merge base> --format markdown``
    into the job summary and a ``mlspec-diff`` artifact.  Everything runs at the repository
    root, naming the project folder (``github.working_directory``) when it is elsewhere, so
    that every annotation's file is a path GitHub can place on the pull request.  The merge
    base is computed in the shell from ``github.event.pull_request.base.sha``, passed through
    ``env:``; no ``${{ }}`` expression appears inside any ``run:``.
``comment`` (``needs: check``; the only job with ``pull-requests: write``)
    downloads the artifact and posts the diff as a sticky comment: the previous comment of
    ``github-actions[bot]`` that starts with the hidden marker ``<!-- mlspec-diff -->`` is
    edited, else one is created, with ``gh api`` (preinstalled on GitHub-hosted runners; the
    body is read from the file, never put on a command line).  Skipped for pull requests from
    forks, whose token is read-only.

Hardening: ``permissions: {}`` at the top and least privilege per job, every action pinned
by full commit SHA with its ``# vX.Y.Z`` comment, timeouts on both jobs, one concurrency
group per pull request with ``cancel-in-progress``, ``bash`` with ``-eo pipefail``.  The
file has 0 findings from actionlint and ``zizmor --offline`` and passes
``check-jsonschema --builtin-schema vendor.github-workflows`` (tests/functional/github/).

Settings: the ``github:`` block of ``environments/<env>.yaml`` (:class:`Settings`).  The
workflow is one for the repository while every environment file may carry the block, so a
key set in several files must have the same value there (a located ``validate`` error
otherwise, :func:`rules`); a key set in one file applies to the repository, and a key set
in none has its default.

Determinism and version bumps: the file depends only on the specs' paths and the github
settings -- and, while ``github.mlspec`` is not set, on the running mlspec version, since
the default install is ``mlspec[kfp]==<that version>`` (so that CI checks with exactly the
mlspec that compiled; the ``kfp`` extra because compiling the Kubeflow target needs kfp).
A new mlspec release therefore rewrites exactly one line of the workflow,
``MLSPEC_REQUIREMENT: mlspec[kfp]==<version>``, and nothing else of the output
(tests/functional/compile/test_minimal_diffs.py).  Set ``github.mlspec`` to pin it yourself.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field

from mlspec.artefact import Artefact
from mlspec.models import Model
from mlspec.registry import Target, source_key

WORKFLOW_PATH = ".github/workflows/mlspec.yaml"
#: The hidden first line of the sticky comment, by which the next run finds it.
MARKER = "<!-- mlspec-diff -->"
ARTIFACT = "mlspec-diff"
#: GitHub refuses comments over 65536 characters; the diff is cut (at a line end) below this many bytes.
COMMENT_LIMIT = 60000
COMMENT_TIMEOUT_MINUTES = 5
ARTIFACT_RETENTION_DAYS = 14

#: action → (commit SHA, the tag it is): resolved with ``git rev-parse <tag>^{commit}`` on
#: the upstream repositories (checkout and setup-python: upstream-facts §9).  All node24.
DEFAULT_PINS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("d23441a48e516b6c34aea4fa41551a30e30af803", "v6.1.0"),
    "actions/setup-python": ("ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
}

SHA = r"^[0-9a-f]{40}$"
VERSION = r"^v?[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.-]+)?$"
#: An exact requirement: ``name[extra,...]==version`` (no ranges, no wildcards).
REQUIREMENT = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*\])?==[0-9A-Za-z.!+_-]+$"
RELATIVE_PATH = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
RUNNER_LABEL = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Pin(Model):
    sha: str = Field(pattern=SHA, description="The full commit SHA the action is pinned to.")
    version: str = Field(pattern=VERSION, description="The tag that commit is, written as the `# vX.Y.Z` comment "
                                                      "after it (zizmor's ref-version-mismatch and Dependabot read it).")


def _pin(action: str):
    sha, version = DEFAULT_PINS[action]
    return Field(default_factory=lambda: Pin(sha=sha, version=version), alias=action,
                 description=f"Default: {action}@{sha} # {version}.")


class Actions(Model):
    """The actions the workflow uses, each pinned by commit SHA."""

    checkout: Pin = _pin("actions/checkout")
    setup_python: Pin = _pin("actions/setup-python")
    upload_artifact: Pin = _pin("actions/upload-artifact")
    download_artifact: Pin = _pin("actions/download-artifact")


#: Actions field → action name.
ACTION_NAMES = {name: field.alias for name, field in Actions.model_fields.items()}


class Settings(Model):
    """The ``github:`` block of ``environments/<env>.yaml``: the pull-request workflow of the
    repository.  A key set in several environment files must have the same value in each."""

    python_version: str = Field("3.12", pattern=r"^3\.[0-9]{1,2}$", description="Python the checks run on.")
    mlspec: str | None = Field(None, pattern=REQUIREMENT, description=(
        "What CI installs, an exact requirement such as `mlspec[kfp]==0.1.0`. Default: `mlspec[kfp]==` the "
        "version of the mlspec that compiles (the kfp extra: compiling the Kubeflow target needs it)."))
    runs_on: str = Field("ubuntu-24.04", pattern=RUNNER_LABEL, description="The runner label of both jobs.")
    timeout_minutes: int = Field(20, ge=1, le=360, description="Timeout of the check job.")
    working_directory: str = Field(".", pattern=RELATIVE_PATH, description=(
        "The project root (the folder holding environments/) relative to the repository root. The output root "
        "must be the repository root, where GitHub reads workflows: compile with `--out` pointing there."))
    actions: Actions = Field(default_factory=Actions, description="Action pins: full commit SHA and the tag's name.")


READS: tuple[str, ...] = ()  # plus env.github, the target's own settings (the specs' paths come with the scope)


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Effective:
    """The repository's settings: per key, the value an environment file sets, else the default."""

    python_version: str
    mlspec: str | None
    runs_on: str
    timeout_minutes: int
    working_directory: str
    pins: dict[str, tuple[str, str]]  # action name → (sha, version)

    def uses(self, action: str) -> str:
        return f"{action}@{self.pins[action][0]}"


def _leaves(settings: Any) -> dict[tuple[str, ...], Any]:
    """A Settings model as ``{key path: value}``, one leaf per scalar setting and per action pin."""
    data = settings.model_dump(mode="json")
    leaves: dict[tuple[str, ...], Any] = {}
    for key, value in data.items():
        if key == "actions":
            leaves.update({("actions", name): pin for name, pin in value.items()})
        else:
            leaves[(key,)] = value
    return leaves


def effective(all_settings: list[Any]) -> Effective:
    """The one set of settings of the repository, from every environment's ``github:`` block.

    Per leaf: the value that differs from the default, if an environment sets one (the
    rule makes them agree; the first environment by name wins otherwise), else the default.
    Depends only on the blocks' values, so only on the declared reads."""
    defaults = _leaves(Settings())
    chosen = dict(defaults)
    for leaves in (_leaves(s) for s in all_settings):
        for path, value in leaves.items():
            if value != defaults[path] and chosen[path] == defaults[path]:
                chosen[path] = value
    pins = {ACTION_NAMES[name]: (chosen[("actions", name)]["sha"], chosen[("actions", name)]["version"])
            for name in ACTION_NAMES}
    return Effective(chosen[("python_version",)], chosen[("mlspec",)], chosen[("runs_on",)],
                     chosen[("timeout_minutes",)], posixpath.normpath(chosen[("working_directory",)]), pins)


def requirement(settings: Effective) -> str:
    """What CI installs: ``github.mlspec``, else ``mlspec[kfp]==<the running mlspec version>``."""
    if settings.mlspec:
        return settings.mlspec
    import mlspec  # read at generation time: a new release changes exactly this

    return f"mlspec[kfp]=={mlspec.__version__}"


# ------------------------------------------------------------------------------ workflow

_GLOB_SPECIAL = re.compile(r"([*?+\[\]!\\])")


def _literal(path: str) -> str:
    """A path as a GitHub ``paths:`` filter that matches it literally."""
    return _GLOB_SPECIAL.sub(r"\\\1", path)


def _in(working_directory: str, path: str) -> str:
    return path if working_directory == "." else f"{working_directory}/{path}"


def paths_filter(settings: Effective, spec_paths: list[str]) -> list[str] | None:
    """The files whose change runs the checks, relative to the repository root; None when
    a spec sits at the project root and so every file may matter."""
    wd = settings.working_directory
    folders = sorted({posixpath.dirname(p) for p in spec_paths})
    if "" in folders and wd == ".":
        return None
    kept = [f for f in folders if not any(f != g and (g == "" or f.startswith(g + "/")) for g in folders)]
    specs = [f"{_literal(_in(wd, f))}/**" if f else f"{_literal(wd)}/**" for f in kept]
    return [
        *specs,
        "**/mlops.yaml",
        "**/mlops.yml",
        f"{_literal(_in(wd, 'environments'))}/**",
        "deploy/**",
        "argocd/**",
        ".mlspec/**",
        WORKFLOW_PATH,
    ]


def diff_script(project: str) -> str:
    return f"""\
base="$(git merge-base "${{BASE_SHA}}" HEAD)"
mkdir -p "${{RUNNER_TEMP}}/mlspec-diff"
mlspec diff --base "${{base}}" --format markdown{project} > "${{RUNNER_TEMP}}/mlspec-diff/diff.md"
cat "${{RUNNER_TEMP}}/mlspec-diff/diff.md" >> "${{GITHUB_STEP_SUMMARY}}"
"""


COMMENT_SCRIPT = f"""\
marker='{MARKER}'
diff="${{RUNNER_TEMP}}/mlspec-diff/diff.md"
body="${{RUNNER_TEMP}}/mlspec-comment.md"
{{
  if [ "$(head -n 1 "${{diff}}")" != "${{marker}}" ]; then
    printf '%s\\n' "${{marker}}"
  fi
  if [ "$(wc -c < "${{diff}}")" -gt {COMMENT_LIMIT} ]; then
    head -c {COMMENT_LIMIT} "${{diff}}" | sed '$d'
    printf '\\n_Cut to fit a comment: the whole diff is in the job summary and the %s artifact._\\n' '{ARTIFACT}'
  else
    cat "${{diff}}"
  fi
}} > "${{body}}"
id="$(gh api --paginate "repos/${{GH_REPO}}/issues/${{PR_NUMBER}}/comments" \\
  --jq '.[] | select(.user.login == "github-actions[bot]" and (.body | startswith("{MARKER}"))) | .id' \\
  | head -n 1)"
if [ -n "${{id}}" ]; then
  gh api --method PATCH "repos/${{GH_REPO}}/issues/comments/${{id}}" -F "body=@${{body}}" > /dev/null
else
  gh api --method POST "repos/${{GH_REPO}}/issues/${{PR_NUMBER}}/comments" -F "body=@${{body}}" > /dev/null
fi
"""


def workflow(settings: Effective, spec_paths: list[str]) -> list[tuple[str, Any]]:
    """The workflow's top-level entries, in the order they are written."""
    # Every command runs at the repository root, naming the project folder when it is not that:
    # GitHub resolves an annotation's file against the workspace (actions/runner#765), so paths
    # must be relative to the repository root -- and without "./" or "../" (crate-ci/typos#1496,
    # ammaraskar/sphinx-action#15), which is why the output root is given as an absolute path,
    # $GITHUB_WORKSPACE: the runner makes absolute paths below the workspace relative to it
    # (ActionCommandManager.cs, IssueCommandExtension).
    wd = settings.working_directory
    project = "" if wd == "." else " " + shlex.quote(wd)
    paths = paths_filter(settings, spec_paths)
    check = {
        "name": "validate, compile --check, diff",
        "runs-on": settings.runs_on,
        "timeout-minutes": settings.timeout_minutes,
        "permissions": {"contents": "read"},
        "defaults": {"run": {"shell": "bash"}},
        "outputs": {"diff": "${{ steps.diff.outcome }}"},
        "steps": [
            {"name": "Check out the merge commit, with the history the merge base needs",
             "uses": settings.uses("actions/checkout"),
             "with": {"fetch-depth": 0, "persist-credentials": False}},
            {"name": "Set up Python", "uses": settings.uses("actions/setup-python"),
             "with": {"python-version": settings.python_version}},
            {"name": "Install mlspec",
             "env": {"MLSPEC_REQUIREMENT": requirement(settings)},
             "run": 'python -m pip install --disable-pip-version-check "${MLSPEC_REQUIREMENT}"'},
            {"name": "mlspec validate", "id": "validate", "run": f"mlspec validate --format github{project}"},
            {"name": "mlspec compile --check",
             "run": f'mlspec compile --check --out "${{GITHUB_WORKSPACE}}" --format github{project}'},
            {"name": "mlspec diff against the merge base", "id": "diff",
             "if": "${{ !cancelled() && steps.validate.outcome == 'success' }}",
             "env": {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"},
             "run": diff_script(project)},
            {"name": "Upload the diff", "uses": settings.uses("actions/upload-artifact"),
             "if": "${{ !cancelled() && steps.diff.outcome == 'success' }}",
             "with": {"name": ARTIFACT, "path": "${{ runner.temp }}/mlspec-diff/diff.md",
                      "if-no-files-found": "error", "retention-days": ARTIFACT_RETENTION_DAYS}},
        ],
    }
    comment = {
        "name": "comment the diff on the pull request",
        "needs": "check",
        # forks get a read-only token: no comment from there
        "if": "${{ !cancelled() && needs.check.outputs.diff == 'success' "
              "&& github.event.pull_request.head.repo.full_name == github.repository }}",
        "runs-on": settings.runs_on,
        "timeout-minutes": COMMENT_TIMEOUT_MINUTES,
        "permissions": {"pull-requests": "write"},
        "defaults": {"run": {"shell": "bash"}},
        "steps": [
            {"name": "Download the diff", "uses": settings.uses("actions/download-artifact"),
             "with": {"name": ARTIFACT, "path": "${{ runner.temp }}/mlspec-diff"}},
            {"name": "Post or update the sticky comment",
             "env": {"GH_TOKEN": "${{ github.token }}", "GH_REPO": "${{ github.repository }}",
                     "PR_NUMBER": "${{ github.event.pull_request.number }}"},
             "run": COMMENT_SCRIPT},
        ],
    }
    trigger: dict[str, Any] = {"paths": paths} if paths is not None else {}
    return [
        ("name", "mlspec"),
        ("on", {"pull_request": trigger}),
        ("permissions", {}),
        ("concurrency", {"group": "${{ github.workflow }}-${{ github.event.pull_request.number }}",
                         "cancel-in-progress": True}),
        ("jobs", {"check": check, "comment": comment}),
    ]


#: Why each permission is granted, as a comment on its line (zizmor's auditor persona asks for it).
PERMISSION_NOTES = {
    "contents: read": "check out the repository",
    "pull-requests: write": "post and update the sticky diff comment",
}
_PERMISSION_LINE = re.compile(r"^(\s+)(" + "|".join(map(re.escape, PERMISSION_NOTES)) + r")$", re.M)
_USES_LINE = re.compile(r"^(\s*(?:- )?uses: )([^\s@'\"]+)@([0-9a-f]{40})$", re.M)


def render_workflow(entries: list[tuple[str, Any]], settings: Effective) -> str:
    """The workflow as YAML: each top-level entry through mlspec's one serializer, in the
    order given, a blank line between them; then the ``# vX.Y.Z`` comment after each pin."""
    from mlspec.render import dump_yaml

    text = "\n".join(dump_yaml({key: value}) for key, value in entries)
    versions = {(action, sha): version for action, (sha, version) in settings.pins.items()}

    def comment(match: re.Match) -> str:
        return f"{match.group(0)} # {versions[(match.group(2), match.group(3))]}"

    annotated, count = _USES_LINE.subn(comment, text)
    if count != text.count("uses: "):
        raise ValueError("an action reference was not rendered as a plain `uses: owner/repo@sha` line")
    return _PERMISSION_LINE.sub(lambda m: f"{m.group(0)} # {PERMISSION_NOTES[m.group(2)]}", annotated)


def generate(ctx) -> list[Artefact]:
    """The workflow of the repository (``ctx`` is a repository-scope ScopeContext)."""
    settings = effective([env.github for env in ctx.envs])
    spec_paths = sorted({c.spec_path for c in ctx.contexts})
    return [Artefact(WORKFLOW_PATH, render_workflow(workflow(settings, spec_paths), settings), kind="text")]


# --------------------------------------------------------------------------------- rules


@lru_cache(maxsize=256)
def _github_block(path: str, mtime_ns: int, size: int) -> Any:
    """The ``github:`` block of an environment file as written (None if absent or unreadable)."""
    from mlspec.loader import load_file

    try:
        data = load_file(Path(path), path).data
    except Exception:  # noqa: BLE001 - that file's own validation reports it
        return None
    return data.get("github") if isinstance(data, dict) else None


def _explicit(block: Any) -> dict[tuple[str, ...], Any]:
    """The leaves a ``github:`` block sets: ``(key,)`` and ``("actions", action)``."""
    if not isinstance(block, dict):
        return {}
    found: dict[tuple[str, ...], Any] = {}
    for key, value in block.items():
        if key == "actions" and isinstance(value, dict):
            found.update({("actions", name): pin for name, pin in value.items()})
        else:
            found[(key,)] = value
    return found


def _show(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"sha", "version"}:
        return f"{value['sha']} # {value['version']}"
    return repr(value)


def _siblings(env_file: str) -> list[tuple[str, str, Any]]:
    """(environment name, display path, github block) of every environment file beside ``env_file``."""
    from mlspec.paths import list_environments

    folder = Path(env_file).parent
    found = []
    for name in list_environments(folder):
        path = folder / f"{name}.yaml"
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((name, path.as_posix(), _github_block(str(path), stat.st_mtime_ns, stat.st_size)))
    return found


def rules(rc) -> None:
    """The settings make sense, and environments that set the same key agree on it."""
    settings = rc.settings
    wd = posixpath.normpath(settings.working_directory)
    if wd == ".." or wd.startswith("../"):
        rc.env_error(("github", "working_directory"), f"github.working_directory '{settings.working_directory}' "
                     "is outside the repository", hint="give the project root relative to the repository root",
                     code="github-settings")
    if rc.env_doc is None:
        return
    mine = _explicit(rc.env_doc.data.get("github") if isinstance(rc.env_doc.data, dict) else None)
    if not mine:
        return
    first: dict[tuple[str, ...], tuple[str, str, Any]] = {}
    for name, path, block in _siblings(rc.env_file):
        for leaf, value in _explicit(block).items():
            first.setdefault(leaf, (name, path, value))
    for leaf, value in sorted(mine.items()):
        if leaf not in first:
            continue
        name, path, other = first[leaf]
        if name == rc.env.name or other == value:
            continue
        key = "github." + ".".join(leaf)
        rc.env_error(("github", *leaf),
                     f"{key} is {_show(value)} here but {_show(other)} in {path}",
                     hint=f"the GitHub workflow is one for the whole repository: set {key} in one environment "
                          "file, or to the same value in each",
                     code="github-settings")


target = Target(
    name="github",
    generate=generate,
    reads=READS,
    scope="repository",
    rules=rules,
    settings=Settings,
    version_key=lambda: source_key(__file__),  # the workflow's shape and the default pins
    description="GitHub Actions pull-request checks of the GitOps repository (.github/workflows/mlspec.yaml)",
)

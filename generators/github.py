"""GitHub target: the pull-request checks of the users' GitOps repository, and the workflows
that close the drift loop with a pull request.

A repository-scope target: files for the whole project, written at the output root,
``.github/workflows/mlspec.yaml`` always, ``mlspec-rollback.yaml`` and ``mlspec-new-model.yaml``
when the specs and environments ask for them (see "repository_dispatch workflows" below).
GitHub reads workflows only from ``.github/workflows/`` at the top of the repository, so
this target is for the usual GitOps layout where ``mlspec compile`` writes into the
repository itself (``--out`` is the repository root).
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

repository_dispatch workflows (the closed loop of drift and continuous deployment)
    ``mlspec-rollback.yaml`` (``on: repository_dispatch: types: [mlspec-rollback]``) is
    written when some spec, resolved in some environment, has ``drift.action: rollback``: the
    drift target's actions Service sends that event with ``client_payload`` ``{spec, env,
    reason, is_drift, p_val, threshold, source}``.  ``mlspec-new-model.yaml`` (``types:
    [mlspec-new-model]``) is written when some environment enables ``drift.new_models`` (the
    drift target's settings; read through the guarded environment, and absent when no drift
    target is installed): the training pipeline's register step sends ``{spec, env, uri,
    version, traffic, metric, goal, score, threshold, champion_score}``.  ``spec`` is the
    spec's path as the targets know it (``ctx.spec_path``: relative to the project root, which
    is the repository root unless ``github.working_directory`` says otherwise).

    One job each (``contents: write`` to push the branch, ``pull-requests: write`` to open the
    pull request; ``permissions: {}`` above).  The first step checks the payload, before
    anything is checked out or installed: every value reaches the shell through ``env:``
    only, never a ``${{ }}`` inside ``run:``; ``spec`` must be one of the committed specs and
    ``env`` one of the environments (allow-lists written here from the scope's contexts), the
    pair one the workflow is for (a spec whose action there is rollback / an environment with
    new_models); ``uri`` a model URI of :data:`SAFE_URI` (mlspec's model URI schemes, with no
    shell or Markdown metacharacters), ``version`` a token, ``traffic`` an integer 0-100,
    numbers numbers, ``metric`` and ``goal`` the spec's vocabulary, free text a small
    character set.  A refusal names the field, never echoes its value (a value printed to the
    log could be read as a workflow command).  The branch,
    ``mlspec/rollback/<env>/<spec name>`` or ``mlspec/new-model/<env>/<spec name>/<version>``,
    is built from validated values only and checked with ``git check-ref-format``.  Then:
    check out (``persist-credentials: false``), install mlspec exactly as ``mlspec.yaml``
    does, run ``mlspec rollback SPEC --env E`` (or ``mlspec challenger SPEC --env E --uri U
    --version V --traffic T``), compile the whole project as the check job does (so the pull
    request carries the regenerated output and its own check passes), and, if the spec
    changed and no pull request from that branch is open, commit, push the branch and
    ``gh pr create`` with a body that explains it: the drift result (p-value against the
    threshold, its source) or the metrics table (metric, champion score, new model score,
    threshold, goal).  Nothing to change, or a pull request already open: a notice, success,
    no second pull request.  A branch left by a closed pull request is replaced
    (``--force``: the ``mlspec/`` branches are mlspec's).  A compile that changes a file of
    ``.github/workflows/`` fails the job before the push (:data:`WORKFLOWS_STALE`: GitHub
    refuses workflow changes pushed with ``GITHUB_TOKEN``; the edits here change none, so
    it means the default branch was not compiled).  The token is never stored in the
    checkout: the push alone gets it, as the ``http.<server>/.extraheader`` that
    actions/checkout would have persisted, through ``GIT_CONFIG_*`` variables of that one
    command.  ``concurrency`` is one group per spec and environment (queued, not cancelled),
    timeouts as the check job's.  ``mlspec.yaml``'s ``paths:`` then also lists these files.

    Two GitHub rules to know: the repository must allow "GitHub Actions to create and approve
    pull requests" (Settings > Actions > General) for ``GITHUB_TOKEN`` to open them, and a
    pull request opened with ``GITHUB_TOKEN`` starts no ``pull_request`` workflow, so
    ``mlspec.yaml`` does not run on it by itself (it carries output compiled by the same
    mlspec pin; re-run the checks by pushing to the branch, or closing and reopening it).
    The pull request goes to the default branch (the one ``repository_dispatch`` runs on).

Determinism and version bumps: the files depend only on the specs' paths and the github
settings (and the two switches above) -- and, while ``github.mlspec`` is not set, on the
running mlspec version, since the default install is ``mlspec[kfp]==<that version>`` (so
that CI checks with exactly the mlspec that compiled; the ``kfp`` extra because compiling
the Kubeflow target needs kfp).
A new mlspec release therefore rewrites exactly one line of each workflow,
``MLSPEC_REQUIREMENT: mlspec[kfp]==<version>``, and nothing else of the output
(tests/functional/compile/test_minimal_diffs.py).  Set ``github.mlspec`` to pin it yourself.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mlspec.models import Model
from mlspec.registry import Target, source_key

if TYPE_CHECKING:
    from mlspec.artefact import Artefact

WORKFLOW_PATH = ".github/workflows/mlspec.yaml"
ROLLBACK_PATH = ".github/workflows/mlspec-rollback.yaml"
NEW_MODEL_PATH = ".github/workflows/mlspec-new-model.yaml"
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


#: Besides env.github (the target's own settings; the specs' paths come with the scope): whether
#: a rollback workflow is needed (a spec's resolved drift action) and a new-model one (the drift
#: target's ``new_models``, absent when that target is not installed).
READS: tuple[str, ...] = ("spec.drift.action", "env.drift.new_models")
ROLLBACK_READS = ("env.github", "spec.drift.action")
NEW_MODEL_READS = ("env.github", "env.drift.new_models")



def generate(ctx) -> list[Artefact]:
    """The workflows of the repository (``ctx`` is a repository-scope ScopeContext), made by
    :mod:`mlspec.generators.github_workflows` -- imported when a compile runs, not by ``validate``."""
    from . import github_workflows

    return github_workflows.generate(ctx)


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


def version_key() -> str:
    """The workflows' shape and the default pins: this module's code and its generator's."""
    return source_key(__file__, str(Path(__file__).resolve().parent / "github_workflows.py"))


target = Target(
    name="github",
    generate=generate,
    reads=READS,
    scope="repository",
    rules=rules,
    settings=Settings,
    version_key=version_key,
    description="GitHub Actions of the GitOps repository: pull-request checks (.github/workflows/mlspec.yaml), "
                "rollback and new-model pull requests on repository_dispatch",
)

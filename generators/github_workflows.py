"""The GitHub target's generator: the pull-request workflow (``.github/workflows/mlspec.yaml``)
and the repository_dispatch workflows that open rollback and new-model pull requests.

What the workflows do and why, the settings, rules and registration are in
:mod:`mlspec.generators.github`, the module the registry loads; this one is imported when a
compile runs, so ``validate`` never pays for it.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any

from mlspec.artefact import Artefact
from mlspec.environments import settings_of
from mlspec.models import MODEL_URI
from mlspec.naming import DISPATCH_NEW_MODEL, DISPATCH_ROLLBACK

from .github import (
    ACTION_NAMES,
    ARTIFACT,
    ARTIFACT_RETENTION_DAYS,
    COMMENT_LIMIT,
    COMMENT_TIMEOUT_MINUTES,
    MARKER,
    NEW_MODEL_PATH,
    NEW_MODEL_READS,
    ROLLBACK_PATH,
    ROLLBACK_READS,
    WORKFLOW_PATH,
    Settings,
)

# ---------------------------------------------------- settings, merged over the environments


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


def paths_filter(settings: Effective, spec_paths: list[str], others: tuple[str, ...] = ()) -> list[str] | None:
    """The files whose change runs the checks, relative to the repository root; None when
    a spec sits at the project root and so every file may matter.  ``others``: the other
    workflows generated (``compile --check`` checks them too)."""
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
        *others,
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


def install_step(settings: Effective) -> dict[str, Any]:
    """mlspec at the pinned requirement (the same step in every workflow)."""
    return {"name": "Install mlspec",
            "env": {"MLSPEC_REQUIREMENT": requirement(settings)},
            "run": 'python -m pip install --disable-pip-version-check "${MLSPEC_REQUIREMENT}"'}


def workflow(settings: Effective, spec_paths: list[str], others: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """The workflow's top-level entries, in the order they are written (``others``: the
    other workflows generated, whose change runs the checks too)."""
    # Every command runs at the repository root, naming the project folder when it is not that:
    # GitHub resolves an annotation's file against the workspace (actions/runner#765), so paths
    # must be relative to the repository root -- and without "./" or "../" (crate-ci/typos#1496,
    # ammaraskar/sphinx-action#15), which is why the output root is given as an absolute path,
    # $GITHUB_WORKSPACE: the runner makes absolute paths below the workspace relative to it
    # (ActionCommandManager.cs, IssueCommandExtension).
    wd = settings.working_directory
    project = "" if wd == "." else " " + shlex.quote(wd)
    paths = paths_filter(settings, spec_paths, others)
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
            install_step(settings),
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
#: The same, for the workflows that open pull requests.
PUSH_PERMISSION_NOTES = {
    "contents: write": "push the pull request's branch",
    "pull-requests: write": "open the pull request",
}
_USES_LINE = re.compile(r"^(\s*(?:- )?uses: )([^\s@'\"]+)@([0-9a-f]{40})$", re.M)


def render_workflow(entries: list[tuple[str, Any]], settings: Effective,
                    notes: dict[str, str] = PERMISSION_NOTES) -> str:
    """The workflow as YAML: each top-level entry through mlspec's one serializer, in the
    order given, a blank line between them; then the ``# vX.Y.Z`` comment after each pin,
    and after each permission why it is granted (``notes``)."""
    from mlspec.render import dump_yaml

    text = "\n".join(dump_yaml({key: value}) for key, value in entries)
    versions = {(action, sha): version for action, (sha, version) in settings.pins.items()}

    def comment(match: re.Match) -> str:
        return f"{match.group(0)} # {versions[(match.group(2), match.group(3))]}"

    annotated, count = _USES_LINE.subn(comment, text)
    if count != text.count("uses: "):
        raise ValueError("an action reference was not rendered as a plain `uses: owner/repo@sha` line")
    line = re.compile(r"^(\s+)(" + "|".join(map(re.escape, notes)) + r")$", re.M)
    return line.sub(lambda m: f"{m.group(0)} # {notes[m.group(2)]}", annotated)


# ------------------------------------------------------------------ repository_dispatch workflows

#: Characters a payload's model URI may have after its scheme: none is shell or Markdown syntax.
URI_CHARS = "[A-Za-z0-9._~/:@%+=,-]"
#: A payload's model URI: one of mlspec's model URI schemes (:data:`mlspec.models.MODEL_URI`), then URI_CHARS.
SAFE_URI = re.sub(r"\\S\+\$$", lambda _: URI_CHARS + "+$", MODEL_URI)
NUMBER = r"^-?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$"
TOKEN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PERCENT = r"^(100|[1-9]?[0-9])$"
TEXT = r"^[A-Za-z0-9 .,:;_()=+%/-]{0,200}$"
EVENT_SOURCE = r"^[A-Za-z0-9._:/-]{0,200}$"
#: The identity GitHub gives the commits of GITHUB_TOKEN's bot.
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
#: Where each workflow's payload step writes its outputs, and the step's id.
PAYLOAD_STEP = "payload"
BODY_FILE = "${RUNNER_TEMP}/mlspec-pull-request.md"


def _metric_vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from typing import get_args

    from mlspec.models import Metric

    return get_args(Metric.model_fields["name"].annotation), get_args(Metric.model_fields["goal"].annotation)


@dataclass(frozen=True)
class PayloadValue:
    """One ``client_payload`` key besides spec and env: what it must look like."""

    key: str
    what: str  # said when it is refused
    pattern: str | None = None  # an ERE, for bash's [[ =~ ]]
    choices: tuple[str, ...] = ()
    optional: bool = False  # may be empty (absent, or JSON null)

    @property
    def var(self) -> str:
        return "PAYLOAD_" + self.key.upper()


def rollback_values() -> tuple[PayloadValue, ...]:
    return (
        PayloadValue("reason", "short text", TEXT, optional=True),
        # alibi-detect's is_drift is 0 or 1; a boolean reads as true or false
        PayloadValue("is_drift", "true, false, 1 or 0", choices=("true", "false", "1", "0")),
        PayloadValue("p_val", "a number or null", NUMBER, optional=True),
        PayloadValue("threshold", "a number or null", NUMBER, optional=True),
        PayloadValue("source", "an event source", EVENT_SOURCE, optional=True),
    )


def new_model_values() -> tuple[PayloadValue, ...]:
    metrics, goals = _metric_vocabulary()
    return (
        PayloadValue("uri", "a model URI", SAFE_URI),
        PayloadValue("version", "a version token", TOKEN),
        PayloadValue("traffic", "an integer from 0 to 100", PERCENT),
        PayloadValue("metric", "one of mlspec's metrics", choices=metrics),
        PayloadValue("goal", "maximize or minimize", choices=goals),
        PayloadValue("score", "a number", NUMBER),
        PayloadValue("threshold", "a number", NUMBER),
        PayloadValue("champion_score", "a number or null", NUMBER, optional=True),
    )


@dataclass(frozen=True)
class Dispatch:
    """What one repository_dispatch workflow is made of."""

    event: str  # the event type
    path: str
    title: str  # the workflow's name
    verb: str  # the job's name
    specs: dict[str, tuple[str, str]]  # spec path (ctx.spec_path) → (spec name, path from the repository root)
    envs: tuple[str, ...]  # every environment of the repository
    pairs: tuple[tuple[str, str], ...]  # (spec path, env) the workflow acts on
    pairs_refusal: str  # why a pair outside ``pairs`` is refused
    values: tuple[PayloadValue, ...]
    branch: str  # a shell word, from validated values only
    edit: str  # the mlspec command that edits the spec
    pull_request: str  # the script that commits, pushes and opens the pull request


def _q(word: str) -> str:
    return shlex.quote(word)


def payload_script(d: Dispatch) -> str:
    """Checks every payload value (through ``env:``) and writes the derived values, built
    from the allow-lists and the checked values only, as the step's outputs."""
    lines = [
        "refuse() {",
        f"  printf '::error title={d.title}::refused the client_payload: %s\\n' \"$1\"",
        "  exit 1",
        "}",
        'case "${PAYLOAD_ENV}" in',
        f"  {' | '.join(_q(e) for e in d.envs)}) ;;",
        f"  *) refuse {_q('env is not one of the environments ' + ', '.join(d.envs))} ;;",
        "esac",
        'case "${PAYLOAD_SPEC}" in',
        *(f"  {_q(spec)}) name={_q(name)} file={_q(file)} ;;" for spec, (name, file) in sorted(d.specs.items())),
        f"  *) refuse {_q(f'spec is not one of the {len(d.specs)} spec path(s) of this repository')} ;;",
        "esac",
        'case "${PAYLOAD_SPEC} ${PAYLOAD_ENV}" in',
        f"  {' | '.join(_q(f'{spec} {env}') for spec, env in d.pairs)}) ;;",
        f"  *) refuse {_q(d.pairs_refusal)} ;;",
        "esac",
    ]
    patterns: dict[str, str] = {}  # each regular expression once, in a variable ([[ =~ ]] takes it unquoted)
    for value in d.values:
        if value.pattern is not None and value.pattern not in patterns:
            patterns[value.pattern] = f"pattern_{len(patterns) + 1}"
            lines.append(f"{patterns[value.pattern]}={_q(value.pattern)}")
    for value in d.values:
        if value.pattern is not None:
            test = f'[[ "${{{value.var}}}" =~ ${{{patterns[value.pattern]}}} ]]'
            if value.optional:
                test = f'[ -z "${{{value.var}}}" ] || {test}'
            lines.append(f"{test} || refuse {_q(f'{value.key} is not {value.what}')}")
        else:
            lines += [f'case "${{{value.var}}}" in',
                      f"  {' | '.join(_q(c) for c in value.choices)}) ;;",
                      f"  *) refuse {_q(f'{value.key} is not {value.what}')} ;;",
                      "esac"]
    lines += [
        f'branch="{d.branch}"',
        'git check-ref-format --branch "${branch}" > /dev/null 2>&1 || refuse \'the branch name is not valid\'',
        "{",
        "  printf 'file=%s\\n' \"${file}\"",
        "  printf 'name=%s\\n' \"${name}\"",
        "  printf 'branch=%s\\n' \"${branch}\"",
        '} >> "${GITHUB_OUTPUT}"',
    ]
    return "\n".join(lines) + "\n"


#: Commit, push with the token (never stored in the checkout) and open the pull request: the
#: part after the body and title, shared by both workflows.
PUSH_AND_OPEN = f"""\
git switch --quiet --create "${{BRANCH}}"
git add --all
git -c user.name='{BOT_NAME}' -c user.email='{BOT_EMAIL}' \\
  commit --quiet --message "${{title}}" --message "${{details}}"
auth="$(printf 'x-access-token:%s' "${{GH_TOKEN}}" | base64 | tr -d '\\n')"
printf '::add-mask::%s\\n' "${{auth}}"
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.${{GITHUB_SERVER_URL}}/.extraheader" \\
  GIT_CONFIG_VALUE_0="AUTHORIZATION: basic ${{auth}}" \\
  git push --force --quiet origin "HEAD:refs/heads/${{BRANCH}}"
gh pr create --base "${{GITHUB_REF_NAME}}" --head "${{BRANCH}}" --title "${{title}}" --body-file "${{body}}"
"""


#: GITHUB_TOKEN cannot push a change to a workflow file: GitHub refuses it "without `workflows`
#: permission", which that token cannot be given (github/docs#11490, peter-evans/create-pull-request#3558).
#: The edits here change no workflow; a compile that does found the default branch's output stale.
WORKFLOWS_STALE = ("compiling changed .github/workflows/, which GITHUB_TOKEN may not push: the output on the "
                   "default branch is not current; run mlspec compile there and commit it first")


def _pull_request_script(nothing: str, body: str) -> str:
    """If the edit changed the spec and no pull request from the branch is open: the body
    (``body`` sets ``title``, ``details`` and writes ``${body}``), commit, push, open.  The
    spec is what says whether there is something to do: output the compile brought up to
    date without an edit is no reason for a pull request."""
    return f"""\
if git diff --quiet -- "${{SPEC_FILE}}"; then
  printf '::notice title=mlspec::nothing to change: %s\\n' "{nothing}"
  exit 0
fi
if [ -n "$(git status --porcelain -- .github/workflows)" ]; then
  printf '::error title=mlspec::{WORKFLOWS_STALE}\\n'
  exit 1
fi
open="$(gh pr list --head "${{BRANCH}}" --state open --json number --jq length)"
if [ "${{open}}" != "0" ]; then
  printf '::notice title=mlspec::a pull request from %s is open already\\n' "${{BRANCH}}"
  exit 0
fi
tick='`'
code() {{
  printf '%s%s%s' "${{tick}}" "$1" "${{tick}}"
}}
body="{BODY_FILE}"
{body}{PUSH_AND_OPEN}"""


ROLLBACK_BODY = """\
title="mlspec: roll back ${SPEC_NAME} in ${PAYLOAD_ENV} (drift)"
details="Drift detector result: p-value ${PAYLOAD_P_VAL:-not given}, threshold ${PAYLOAD_THRESHOLD:-not given}, source ${PAYLOAD_SOURCE:-not given}."
{
  printf '## Roll back %s in %s\\n\\n' "$(code "${SPEC_NAME}")" "$(code "${PAYLOAD_ENV}")"
  printf 'The drift detector reported that the served data has drifted from the training data, and the '
  printf 'spec says %s there, so this pull request sends 100%% of the traffic to the champion ' "$(code 'drift.action: rollback')"
  printf '(%s) and carries the output compiled from it. ' "$(code "mlspec rollback ${SPEC_FILE} --env ${PAYLOAD_ENV}")"
  printf 'Merging it rolls back: Argo CD syncs the new split.\\n\\n'
  printf '| Drift result | |\\n|---|---|\\n'
  printf '| drift | %s |\\n' "${PAYLOAD_IS_DRIFT}"
  printf '| p-value | %s |\\n' "${PAYLOAD_P_VAL:-not given}"
  printf '| threshold | %s |\\n' "${PAYLOAD_THRESHOLD:-not given}"
  printf '| source | %s |\\n' "$(code "${PAYLOAD_SOURCE:-not given}")"
  printf '| reason | %s |\\n' "${PAYLOAD_REASON:-not given}"
  printf '\\nDrift is a p-value below the threshold.\\n\\nThe edit of the spec:\\n\\n'
  printf '```diff\\n'
  git diff -- "${SPEC_FILE}"
  printf '```\\n'
} > "${body}"
"""

NEW_MODEL_BODY = """\
title="mlspec: new challenger for ${SPEC_NAME} in ${PAYLOAD_ENV} (version ${PAYLOAD_VERSION}, ${PAYLOAD_TRAFFIC}%)"
details="Registered by the training pipeline: ${PAYLOAD_URI}; ${PAYLOAD_METRIC} ${PAYLOAD_SCORE} (threshold ${PAYLOAD_THRESHOLD}, ${PAYLOAD_GOAL}), champion ${PAYLOAD_CHAMPION_SCORE:-not scored}."
if [ -n "${PAYLOAD_CHAMPION_SCORE}" ]; then
  verdict="$(awk -v new="${PAYLOAD_SCORE}" -v old="${PAYLOAD_CHAMPION_SCORE}" -v goal="${PAYLOAD_GOAL}" 'BEGIN {
    n = new + 0; o = old + 0
    if (n == o) print "scores the same as"
    else if ((n > o) == (goal == "maximize")) print "scores better than"
    else print "scores worse than"
  }')"
  verdict="The new model ${verdict} the champion on ${PAYLOAD_METRIC} (goal: ${PAYLOAD_GOAL})."
else
  verdict="The champion has no score to compare with."
fi
{
  printf '## New challenger for %s in %s\\n\\n' "$(code "${SPEC_NAME}")" "$(code "${PAYLOAD_ENV}")"
  printf 'The training pipeline registered a model that passes the quality gate, %s (version %s). ' \\
    "$(code "${PAYLOAD_URI}")" "$(code "${PAYLOAD_VERSION}")"
  printf 'This pull request makes it the challenger with %s%% of the traffic (%s) and carries the output compiled ' \\
    "${PAYLOAD_TRAFFIC}" "$(code "mlspec challenger ${SPEC_FILE} --env ${PAYLOAD_ENV}")"
  printf 'from it. Merging it starts the canary: Argo CD syncs the new split.\\n\\n'
  printf '| Metric | Champion | New model | Threshold | Goal |\\n|---|---|---|---|---|\\n'
  printf '| %s | %s | %s | %s | %s |\\n' "$(code "${PAYLOAD_METRIC}")" "${PAYLOAD_CHAMPION_SCORE:-n/a}" \\
    "${PAYLOAD_SCORE}" "${PAYLOAD_THRESHOLD}" "${PAYLOAD_GOAL}"
  printf '\\n%s\\n\\nThe edit of the spec:\\n\\n' "${verdict}"
  printf '```diff\\n'
  git diff -- "${SPEC_FILE}"
  printf '```\\n'
} > "${body}"
"""


def dispatch_workflow(d: Dispatch, settings: Effective) -> list[tuple[str, Any]]:
    """A repository_dispatch workflow's top-level entries."""
    wd = settings.working_directory
    project = "" if wd == "." else " " + shlex.quote(wd)
    outputs = {"SPEC_FILE": "file", "SPEC_NAME": "name", "BRANCH": "branch"}
    derived = {var: f"${{{{ steps.{PAYLOAD_STEP}.outputs.{key} }}}}" for var, key in outputs.items()}
    payload = {f"PAYLOAD_{key.upper()}": f"${{{{ github.event.client_payload.{key} }}}}"
               for key in ("spec", "env", *(v.key for v in d.values))}
    job = {
        "name": d.verb,
        "runs-on": settings.runs_on,
        "timeout-minutes": settings.timeout_minutes,
        "permissions": {"contents": "write", "pull-requests": "write"},
        "defaults": {"run": {"shell": "bash"}},
        "env": payload,  # the payload reaches the scripts only as these variables
        "steps": [
            {"name": "Check the payload", "id": PAYLOAD_STEP, "run": payload_script(d)},
            {"name": "Check out the default branch", "uses": settings.uses("actions/checkout"),
             "with": {"persist-credentials": False}},
            {"name": "Set up Python", "uses": settings.uses("actions/setup-python"),
             "with": {"python-version": settings.python_version}},
            install_step(settings),
            {"name": "Edit the spec and compile", "env": {"SPEC_FILE": derived["SPEC_FILE"]},
             "run": f'{d.edit}\nmlspec compile --out "${{GITHUB_WORKSPACE}}" --format github{project}\n'},
            {"name": "Open the pull request",
             "env": {"GH_TOKEN": "${{ github.token }}", "GH_REPO": "${{ github.repository }}", **derived},
             "run": d.pull_request},
        ],
    }
    return [
        ("name", d.title),
        ("on", {"repository_dispatch": {"types": [d.event]}}),
        ("permissions", {}),
        ("concurrency", {"group": "${{ github.workflow }}-${{ github.event.client_payload.env }}-"
                                  "${{ github.event.client_payload.spec }}",
                         "cancel-in-progress": False}),
        ("jobs", {"pull-request": job}),
    ]


def _specs(ctx, settings: Effective) -> dict[str, tuple[str, str]]:
    return {c.spec_path: (c.spec.name, _in(settings.working_directory, c.spec_path)) for c in ctx.contexts}


def rollback_pairs(contexts) -> list[tuple[str, str]]:
    """(spec path, env) of every spec whose resolved drift action there is rollback."""
    return sorted({(c.spec_path, c.env.name) for c in contexts
                   if c.spec.drift is not None and c.spec.drift.action == "rollback"})


def new_model_envs(envs) -> list[str]:
    """The environments whose drift settings enable ``new_models``.  The drift target adds
    ``env.drift``; without it (a project run without that target) there is no such block."""
    found = []
    for env in envs:
        drift = settings_of(env, "drift")
        if drift is not None and drift.new_models is not None:
            found.append(env.name)
    return sorted(found)


def rollback_dispatch(ctx, settings: Effective) -> Dispatch | None:
    pairs = rollback_pairs(ctx.contexts)
    if not pairs:
        return None
    return Dispatch(
        DISPATCH_ROLLBACK, ROLLBACK_PATH, "mlspec rollback", "roll back on drift: a pull request",
        _specs(ctx, settings), tuple(sorted(e.name for e in ctx.envs)), tuple(pairs),
        "that spec's drift.action is not rollback in that environment", rollback_values(),
        "mlspec/rollback/${PAYLOAD_ENV}/${name}",
        'mlspec rollback "${SPEC_FILE}" --env "${PAYLOAD_ENV}"',
        _pull_request_script("${SPEC_NAME} already sends 100% of the traffic to the champion in ${PAYLOAD_ENV}",
                             ROLLBACK_BODY))


def new_model_dispatch(ctx, settings: Effective) -> Dispatch | None:
    enabled = set(new_model_envs(ctx.envs))
    pairs = sorted({(c.spec_path, c.env.name) for c in ctx.contexts if c.env.name in enabled})
    if not pairs:
        return None
    return Dispatch(
        DISPATCH_NEW_MODEL, NEW_MODEL_PATH, "mlspec new model", "a new challenger: a pull request",
        _specs(ctx, settings), tuple(sorted(e.name for e in ctx.envs)), tuple(pairs),
        "that environment's drift.new_models is not set", new_model_values(),
        "mlspec/new-model/${PAYLOAD_ENV}/${name}/${PAYLOAD_VERSION}",
        'mlspec challenger "${SPEC_FILE}" --env "${PAYLOAD_ENV}" --uri "${PAYLOAD_URI}" '
        '--version "${PAYLOAD_VERSION}" --traffic "${PAYLOAD_TRAFFIC}"',
        _pull_request_script("${PAYLOAD_URI} is the challenger of ${SPEC_NAME} in ${PAYLOAD_ENV} already",
                             NEW_MODEL_BODY))


def generate(ctx) -> list[Artefact]:
    """The workflows of the repository (``ctx`` is a repository-scope ScopeContext): the
    pull-request checks, and each repository_dispatch workflow the specs and environments need."""
    settings = effective([env.github for env in ctx.envs])
    spec_paths = sorted({c.spec_path for c in ctx.contexts})
    dispatches = [(d, reads) for d, reads in ((rollback_dispatch(ctx, settings), ROLLBACK_READS),
                                              (new_model_dispatch(ctx, settings), NEW_MODEL_READS)) if d is not None]
    others = tuple(d.path for d, _ in dispatches)
    return [
        Artefact(WORKFLOW_PATH, render_workflow(workflow(settings, spec_paths, others), settings), kind="text"),
        *(Artefact(d.path, render_workflow(dispatch_workflow(d, settings), settings, PUSH_PERMISSION_NOTES),
                   kind="text", reads=reads) for d, reads in dispatches),
    ]

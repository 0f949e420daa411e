"""``mlspec run SPEC --local``: run the spec's training pipeline on this machine with kfp.local.

The pipeline is the one the Kubeflow target compiles (:func:`mlspec.generators.kubeflow_pipeline.build_pipeline`),
built with ``local=True`` -- identical steps and graph, except that the steps install no
packages: they run in this interpreter (``kfp.local.SubprocessRunner(use_venv=False)``),
so a local run never pip-installs into, or downgrades, the user's environment.  The
pipeline parameters are ``data_root`` = the spec's folder (relative data paths resolve
there) and ``registry_root`` = ``<out>/registry``.  When Feast serves the features, the Feast
feature step runs its body with the Python named by ``--feast-python`` / ``$MLSPEC_FEAST_PYTHON``
(:func:`feast_interpreter`; without one the run stops before starting, exit 2).

Everything the run writes goes below ``out_dir``: ``pipeline-root/`` (kfp's task outputs),
``registry/<spec>/<version>/`` (model, metrics.json, params.json, lineage.json),
``run.log`` (the full kfp log).  The console gets a summary: candidates and scores, the
chosen parameters, the metric against the threshold and where the model went.

Exit codes: 0 the model was registered; 1 the pipeline failed (quality gate, data check,
a step error -- the step's own message is shown, not a traceback); 2 the spec cannot run
locally (container training, warehouse sources, missing packages).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import json
import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import IO, Any

from .context import Context

FAILURE_MARK = "MLSPEC-FAILURE: "
CANDIDATES_MARK = "MLSPEC-CANDIDATES: "
LOCAL_PACKAGES = ("pandas", "pyarrow", "sklearn", "joblib", "kfp")


def _console(out: IO[str]):
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=True, no_color=bool(os.environ.get("NO_COLOR")) or None)


def _markers(log_text: str, mark: str) -> list[str]:
    found = []
    for line in log_text.splitlines():
        at = line.find(mark)
        if at >= 0:
            found.append(line[at + len(mark):].strip())
    return found


def _last_error(log_text: str) -> str | None:
    errors = [m.group(0).strip() for m in re.finditer(r"^\s*[A-Za-z_.]*(Error|Exception)\b: .*$", log_text, re.M)]
    return errors[-1] if errors else None


def feast_interpreter(feast_python: str | None = None) -> str | None:
    """The Python with Feast a local run uses: ``feast_python`` (``--feast-python``), else
    ``$MLSPEC_FEAST_PYTHON``, else None."""
    return feast_python or os.environ.get("MLSPEC_FEAST_PYTHON") or None


def preflight(ctx: Context, feast_python: str | None = None) -> str | None:
    """Why this spec cannot run locally, or None."""
    from .generators import kubeflow, kubeflow_pipeline

    training = ctx.spec.training
    if training.container is not None:
        return ("mlspec run --local supports estimator training only: this spec trains with the container image "
                f"'{training.container.image}'. Compile it and run it on Kubeflow instead.")
    p = kubeflow_pipeline.plan(ctx)
    remote = [s.name + f" ({s.type})" for s in p.ingests if s.type != "file"]
    if remote:
        return ("mlspec run --local reads file sources only; this spec reads from "
                + ", ".join(remote) + ". Compile it and run it on Kubeflow instead.")
    modules = list(LOCAL_PACKAGES) + [training.estimator.rpartition(".")[0]]
    missing = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        return ("mlspec run --local needs these packages in this Python environment: " + ", ".join(missing)
                + " (pip install 'mlspec[kfp]')")
    # remote data files are read through fsspec: the filesystem package of each URI scheme
    # (a cluster run installs it into the step; a local run uses this environment)
    needs: dict[str, list[str]] = {}
    for s in ctx.spec.data.sources:
        scheme = kubeflow.uri_scheme(s.path) if s.type == "file" and s.name in {i.name for i in p.ingests} else None
        for package in kubeflow.FS_PACKAGES.get(scheme or "", ()):
            if importlib.util.find_spec(package) is None:
                needs.setdefault(package, []).append(f"{s.name} ({scheme}://)")
    if needs:
        pins = " ".join(f"'{kubeflow.PINS[pkg]}'" for pkg in sorted(needs))
        which = "; ".join(f"{pkg} for {', '.join(names)}" for pkg, names in sorted(needs.items()))
        return f"mlspec run --local reads remote data files through fsspec and needs {which}: pip install {pins}"
    if ctx.spec.features.feature_store:
        python = feast_interpreter(feast_python)
        if not python:
            return ("this spec reads its training features through Feast (features.feature_store), and Feast "
                    "cannot share this environment (it pins pandas<3): give a Python with "
                    f"feast=={_feast_version()} with --feast-python PATH or $MLSPEC_FEAST_PYTHON, "
                    "or set features.feature_store: false")
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            return f"the Feast interpreter {python} (--feast-python or $MLSPEC_FEAST_PYTHON) is not an executable file"
    return None


def _feast_version() -> str:
    from .generators import feast

    return feast.FEAST_VERSION


@contextlib.contextmanager
def _captured(log_path: Path):
    """Send everything kfp.local prints (its logs and the steps' output) to ``log_path``;
    put back what kfp.local leaves changed (root logger, ``print``)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    original_print = builtins.print
    with open(log_path, "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield log
        finally:
            builtins.print = original_print
            root.handlers[:] = handlers
            root.setLevel(level)


def run_local(resolved_ctx: Context, base_dir: Path, out_dir: Path, console_out: IO[str],
              feast_python: str | None = None) -> int:
    """Run the training pipeline locally; print a summary to ``console_out``; return the exit code.
    ``feast_python``: the Python with Feast of the Feast feature step (default ``$MLSPEC_FEAST_PYTHON``)."""
    console = _console(console_out)
    problem = preflight(resolved_ctx, feast_python)
    if problem:
        console.print(f"[red]error:[/red] {problem}")
        return 2

    from rich.markup import escape

    from .generators import kubeflow_pipeline

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = out_dir / "registry"
    log_path = out_dir / "run.log"
    spec = resolved_ctx.spec
    metric = spec.training.metric
    p = kubeflow_pipeline.plan(resolved_ctx)
    version = kubeflow_pipeline.pipeline_version_name(resolved_ctx)
    python = feast_interpreter(feast_python) if spec.features.feature_store else None
    features = f"features through Feast ({python})" if python else f"{len(p.joins)} feature join(s)"
    console.print(f"running [bold]{escape(version)}[/bold] locally: {len(p.ingests)} source(s), "
                  f"{escape(features)}, {len(p.candidates)} candidate(s) "
                  f"(log: {escape(str(log_path))})")

    started = time.monotonic()
    import kfp.local

    pipeline = kubeflow_pipeline.build_pipeline(resolved_ctx, local=True, version_name=version, feast_python=python)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out_dir / "pipeline-root"),
        workspace_root=str(out_dir / "workspace"),
        raise_on_error=True,
    )
    error: BaseException | None = None
    result: Any = None
    with _captured(log_path):
        try:
            result = pipeline(data_root=str(Path(base_dir).resolve()), registry_root=str(registry))
        except Exception as exc:  # kfp raises RuntimeError naming the failed task
            error = exc
    elapsed = time.monotonic() - started
    log_text = log_path.read_text(encoding="utf-8", errors="replace")

    selections = _markers(log_text, CANDIDATES_MARK)
    selection = json.loads(selections[-1]) if selections else None
    if selection:
        _candidate_table(console, selection, p.candidates)

    if error is not None:
        failures = _markers(log_text, FAILURE_MARK)
        message = failures[-1] if failures else (_last_error(log_text) or str(error))
        console.print(f"[red]{escape(message)}[/red]")
        console.print(f"[dim]pipeline failed after {elapsed:.1f}s; full log: {escape(str(log_path))}[/dim]")
        return 1

    if hasattr(result, "outputs"):  # kfp.local returns the pipeline's task; its output is register's JSON
        outputs = result.outputs
        result = outputs.get("Output") if isinstance(outputs, dict) else outputs
    summary = json.loads(result) if isinstance(result, str) else dict(result or {})
    chosen = summary.get("selection", selection or {})
    best = chosen.get("best", {})
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(best.get("params", {}).items())) or "(estimator defaults)"
    sign = "≥" if metric.goal == "maximize" else "≤"
    console.print(f"chosen: {escape(params)}")
    console.print(f"{metric.name} = {best.get('score', float('nan')):.4f} {sign} threshold {metric.threshold:.4f} "
                  f"([green]quality gate passed[/green])")
    console.print(f"model:   {escape(summary.get('model_uri', ''))}/model.joblib")
    console.print(f"metrics: {escape(summary.get('metrics_uri', ''))}")
    console.print(f"registered {escape(spec.name)} version {escape(summary.get('version', '?'))} in {elapsed:.1f}s "
                  f"(outputs under {escape(str(out_dir))})")
    return 0


def _candidate_table(console, selection: dict, candidates) -> None:
    from rich.table import Table

    names = sorted({k for c in candidates for k in c})
    metric = selection.get("metric", "score")
    best_index = selection.get("best", {}).get("index")
    table = Table(title=f"candidates ({selection.get('goal', '')} {metric})", show_lines=False)
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name)
    table.add_column(metric, justify="right")
    table.add_column("")
    for row in selection.get("candidates", []):
        score = row.get("score")
        shown = "nan" if score is None or score != score else f"{score:.4f}"
        marker = "best" if row.get("index") == best_index else ""
        table.add_row(str(row.get("index")), *[repr(row.get("params", {}).get(n, "")) for n in names], shown, marker,
                      style="bold" if marker else None)
    console.print(table)

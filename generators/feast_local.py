"""``mlspec features SPEC --local``: the spec's Feast repository, applied and read on this machine.

What it does, in a work folder (``--out``, default a temporary folder that is removed):

1. generates the environment's Feast repository exactly as ``mlspec compile`` does
   (:func:`mlspec.generators.feast_repo.repo_files`) and localizes it
   (:func:`mlspec.generators.feast_prepare.localize_repo`): the ``path=`` of each data
   source moves from the environment's data root to the spec's folder (where the sample
   data is) and from the prepared root to the work folder; ``feature_store.yaml`` gets a
   file registry and a SQLite online store below the repository's ``data/`` (everything
   else -- project, definitions, entity key serialization -- is the generated one);
2. runs ``feast apply``, the generated ``jobs/prepare.py`` (when a view is prepared) and
   ``feast materialize`` over the time range of the sample data (earliest to latest
   timestamp of the feature views' sources);
3. reads the training feature service online for the ``--entity KEY=VALUE`` given (one
   entity row; several keys for views with several entities), or for the first five
   entity rows of the label source, and prints them as a table.

Feast runs in a subprocess (:mod:`mlspec.generators.feast_runner`) of an interpreter that
has it: ``--feast-python PATH``, else ``$MLSPEC_FEAST_PYTHON``, else this interpreter if it
can import feast (Feast pins ``pandas<3``, so it often lives in its own virtual
environment).  mlspec never imports Feast itself.

Exit codes: 0 values printed; 1 the spec is invalid or Feast failed (its output is shown);
2 usage: no interpreter with Feast, a bad ``--entity``, a spec that reads no local files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, IO, Sequence

if TYPE_CHECKING:
    from mlspec.context import Context


RUNNER = Path(__file__).resolve().parent / "feast_runner.py"
PYTHON_ENV = "MLSPEC_FEAST_PYTHON"


def feast_python(explicit: str | None = None) -> str | None:
    """The interpreter to run Feast with, or None."""
    chosen = explicit or os.environ.get(PYTHON_ENV)
    if chosen:
        return chosen
    return sys.executable if importlib.util.find_spec("feast") is not None else None


def local_request(ctx: Context, base_dir: Path, workdir: Path) -> dict[str, Any]:
    """Write the localized repository under ``workdir``; the runner request that applies,
    prepares and materializes it (the caller adds what to read)."""
    from mlspec.render import dump_yaml

    from . import feast as ft
    from . import feast_prepare, feast_repo

    base_dir, workdir = Path(base_dir).resolve(), Path(workdir).resolve()
    files = feast_repo.repo_files(ctx)
    prepared = workdir / "prepared"
    roots = {feast_repo.data_root(ctx): str(base_dir), feast_repo.prepared_root(ctx): str(prepared)}
    local_config = dump_yaml(feast_repo.local_feature_store_config(feast_repo.feature_store_config(ctx)))
    localized = json.loads(feast_prepare.localize_repo(json.dumps(files), json.dumps(roots), local_config))
    for rel, text in localized.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    spec = ctx.spec
    plan = feast_repo.prepare_plan(ctx)
    ranged = []
    for view in spec.features.views:
        batch = ft.batch_source_of(spec, view.source)
        if batch.type == "file" and "://" not in batch.path:
            ranged.append({"path": str(base_dir / batch.path), "format": batch.file_format,
                           "timestamp": batch.timestamp or spec.source(view.source).timestamp})
    request: dict[str, Any] = {"repo": str(workdir / "repo"), "apply": True, "range_sources": ranged,
                               "online": [], "registry": False}
    if plan:
        request["prepare"] = {"data_root": str(base_dir),
                              "outputs": {p["view"]: str(prepared / f"{p['view']}.parquet") for p in plan}}
    return request


def run_feast(python: str, request: dict, workdir: Path) -> dict:
    """Run :mod:`feast_runner` with ``python``; its result."""
    workdir = Path(workdir)
    request_path, result_path = workdir / "request.json", workdir / "result.json"
    request_path.write_text(json.dumps(request, sort_keys=True), encoding="utf-8")
    proc = subprocess.run([python, str(RUNNER), str(request_path), str(result_path)], capture_output=True,
                          text=True, timeout=1800)
    if not result_path.is_file():
        return {"error": f"the Feast runner failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}", "steps": []}
    return json.loads(result_path.read_text(encoding="utf-8"))


def parse_entities(ctx: Context, pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as one entity row, values typed by the entity's dtype."""
    dtypes = {e.join_key: e.dtype for e in ctx.spec.features.entities}
    row: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in dtypes:
            known = ", ".join(sorted(dtypes))
            raise ValueError(f"--entity {pair!r}: expected KEY=VALUE with KEY one of {known}")
        dtype = dtypes[key]
        try:
            row[key] = int(value) if dtype in ("int32", "int64") else float(value) if dtype.startswith("float") \
                else value.lower() in ("1", "true") if dtype == "bool" else value
        except ValueError:
            raise ValueError(f"--entity {pair!r}: '{value}' is not a {dtype}") from None
    return row


def _table(console, online: dict, keys: list[str]) -> None:
    from rich.markup import escape
    from rich.table import Table

    values = online["values"]
    table = Table(title=f"online features of feature service {escape(online['service'])}")
    table.add_column("feature")
    for i, _row in enumerate(online["entities"]):
        table.add_column(", ".join(f"{k}={values[k][i]}" for k in keys if k in values), justify="right")
    for name, column in values.items():
        if name in keys:
            continue
        table.add_row(escape(name), *["—" if v is None else escape(repr(v) if isinstance(v, str) else str(v))
                                      for v in column])
    console.print(table)


def features_local(spec_path: Path, env_name: str | None = None, entities: Sequence[str] = (), *,
                   env_dir: Path | None = None, out_dir: Path | None = None, feast_python_path: str | None = None,
                   targets: list | None = None, console_out: IO[str] | None = None) -> int:
    """``mlspec features SPEC --local [--env E] [--entity KEY=VALUE ...]`` (see the module docstring)."""
    from rich.console import Console
    from rich.markup import escape

    from mlspec.compiler import context
    from mlspec.project import resolve_paths

    from . import feast as ft
    from . import feast_repo

    console = Console(file=console_out or sys.stdout, highlight=False, soft_wrap=True,
                      no_color=bool(os.environ.get("NO_COLOR")) or None)
    if targets is None:
        from mlspec import registry

        targets = registry.select(None)
    feast_target = next((t for t in targets if t.name == "feast"), ft.target)
    if feast_target not in targets:
        targets = [*targets, feast_target]
    result = resolve_paths([Path(spec_path)], [env_name] if env_name else None, env_dir, targets=targets)
    if result.errors:
        for err in result.errors:
            console.print(escape(str(err)))
        return 1
    if not result.resolved or result.resolved[0].env is None:
        console.print("[red]error:[/red] no environment to read the features in (create environments/<env>.yaml)")
        return 2
    chosen = result.resolved[0]  # the named environment, or the first one (by name)
    ctx = context(chosen, feast_target)
    python = feast_python(feast_python_path)
    if python is None:
        console.print(f"[red]error:[/red] no Python with Feast: pass --feast-python PATH or set {PYTHON_ENV} "
                      f"(e.g. python -m venv .venv-feast && .venv-feast/bin/pip install {ft.FEAST_PIN})")
        return 2
    try:
        row = parse_entities(ctx, entities) if entities else None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    spec = ctx.spec
    keep = out_dir is not None
    workdir = Path(out_dir) if keep else Path(tempfile.mkdtemp(prefix="mlspec-feast-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        request = local_request(ctx, chosen.base_dir, workdir)
        if not request["range_sources"]:
            console.print("[red]error:[/red] the spec's feature views read no local files to materialize")
            return 2
        service = spec.training.feature_service
        if row is not None:
            request["online"] = [{"service": service, "entities": [row]}]
        else:
            label = spec.source(spec.training.label.source)
            keys = list(feast_repo.training_step(ctx).entity_keys)
            request["sample_entities"] = {"path": str(Path(chosen.base_dir) / label.path), "format": label.file_format,
                                          "keys": keys, "limit": 5, "service": service}
        console.print(f"applying the Feast repository of [bold]{escape(spec.name)}[/bold] "
                      f"(environment {escape(ctx.env.name)}) in {escape(str(workdir))}")
        outcome = run_feast(python, request, workdir)
        for step in outcome.get("steps", []):
            console.print(f"[dim]{escape(step['step'])}: {step['seconds']:.1f}s[/dim]")
        if outcome.get("error"):
            console.print(f"[red]{escape(outcome['error'])}[/red]")
            return 1
        if outcome.get("range"):
            console.print(f"materialized {escape(outcome['range'][0])} .. {escape(outcome['range'][1])}")
        keys = [e.join_key for e in spec.features.entities]
        for online in outcome["online"]:
            _table(console, online, keys)
        return 0
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

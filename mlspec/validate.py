"""Validation: model errors mapped back to ``file:line:col``, then cross-reference checks.

:func:`check_model` turns pydantic's errors into :class:`SpecError` at the position of
the offending key or value; :func:`cross_check` checks what one field cannot know on
its own (references between sections, traffic sums, grid size, the columns of local
data files); :func:`policy_check` enforces an environment's caps on a resolved spec.
"""

from __future__ import annotations

import functools
import math
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from . import models as m
from . import units
from .errors import Location, SpecError, SpecErrors, did_you_mean
from .loader import Document

#: Label key prefixes mlspec sets on every object it generates (see mlspec.context).
RESERVED_LABEL_PREFIXES = ("mlspec.io/", "app.kubernetes.io/")

T = TypeVar("T", bound=BaseModel)

#: Largest hyper-parameter grid (number of combinations) a spec may ask for.
MAX_GRID = 256


class MetricInfo(typing.NamedTuple):
    goal: str  # the only direction that makes sense for the metric
    low: float  # range of the metric's values (inclusive)
    high: float
    kind: str  # the estimator kind it scores: classifier or regressor
    proba: bool = False  # scored from predict_proba


#: Every metric of ``training.metric.name``: its direction, range and what it scores.
METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("maximize", 0.0, 1.0, "classifier"),
    "f1": MetricInfo("maximize", 0.0, 1.0, "classifier"),
    "precision": MetricInfo("maximize", 0.0, 1.0, "classifier"),
    "recall": MetricInfo("maximize", 0.0, 1.0, "classifier"),
    "roc_auc": MetricInfo("maximize", 0.0, 1.0, "classifier", proba=True),
    "pr_auc": MetricInfo("maximize", 0.0, 1.0, "classifier", proba=True),  # average precision
    "gini": MetricInfo("maximize", -1.0, 1.0, "classifier", proba=True),  # 2·roc_auc − 1
    "log_loss": MetricInfo("minimize", 0.0, math.inf, "classifier", proba=True),
    "r2": MetricInfo("maximize", -math.inf, 1.0, "regressor"),
    "mae": MetricInfo("minimize", 0.0, math.inf, "regressor"),
    "mape": MetricInfo("minimize", 0.0, math.inf, "regressor"),  # a fraction: 0.1 is 10%
    "mse": MetricInfo("minimize", 0.0, math.inf, "regressor"),
    "rmse": MetricInfo("minimize", 0.0, math.inf, "regressor"),
}

_PATTERN_MESSAGES = {
    m.DNS1123_LABEL: "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit, at most 63 characters",
    m.IDENTIFIER: "must be an identifier: letters, digits and '_', not starting with a digit, at most 63 characters",
    m.IMPORT_PATH: "must be a dotted Python import path such as sklearn.ensemble.RandomForestClassifier",
    m.IMAGE: "must be a container image reference such as ghcr.io/acme/trainer:1.2",
    units.DURATION_PATTERN: "must be a duration such as 30d, 12h, 90m or 1h30m",
    units.QUANTITY_PATTERN: "must be a Kubernetes quantity such as 500m, 2 or 4Gi",
    m.MODEL_URI: "must be a URI with a scheme gs://, s3://, pvc://, http(s)://, oci://, hf:// or file://",
}


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


# --- model errors ---------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [_unwrap(a) for a in typing.get_args(tp)]
    return [tp]


def _pick_model(tp: Any, node: Any) -> type[BaseModel] | None:
    models = [t for t in _members(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    if isinstance(node, dict) and "type" in node:
        for model in models:
            field = model.model_fields.get("type")
            if field is not None and node["type"] in typing.get_args(_unwrap(field.annotation)):
                return model
    return models[0] if len(models) == 1 or models else None


def _child_type(tp: Any, node: Any, key: Any) -> Any:
    for member in _members(tp):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            model = _pick_model(tp, node)
            if model is not None:
                for name, field in model.model_fields.items():
                    if key in (name, field.alias):
                        return field.annotation
            return None
        if origin is list and isinstance(key, int):
            return typing.get_args(member)[0]
        if origin is dict:
            return typing.get_args(member)[1]
    return None


def allowed_keys(root: type[BaseModel], data: Any, path: tuple) -> list[str]:
    """The keys a mapping at ``path`` may have, following the model's types."""
    tp: Any = root
    node = data
    for key in path:
        tp = _child_type(tp, node, key)
        if tp is None:
            return []
        node = node[key] if isinstance(node, (dict, list)) else None
    model = _pick_model(tp, node)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _loc_to_path(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """Map a pydantic ``loc`` to a path in ``data`` (dropping union tags); returns (path, rest)."""
    path: list = []
    node = data
    rest: Any = None
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1:
            rest = part
        # else: a union member or validator name that pydantic inserts; skip it
    return tuple(path), rest


def _message(err: dict) -> tuple[str, str | None]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return _PATTERN_MESSAGES.get(pattern, f"'{err.get('input')}' does not match the pattern {pattern}"), None
    if kind == "literal_error":
        got = err.get("input")
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",")]
        return f"'{got}' is not one of {expected}", did_you_mean(str(got), choices)
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        choices = [c.strip().strip("'") for c in expected.split(",")]
        return (
            f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} '{ctx.get('tag')}'; expected one of {expected}",
            did_you_mean(str(ctx.get("tag")), choices),
        )
    if kind == "union_tag_not_found":
        return f"missing key {ctx.get('discriminator', 'type')}", "say which kind this is, e.g. type: file"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])), None
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_type_name(err.get('input'))}", None
    if kind == "list_type":
        return f"expected a list, got {_type_name(err.get('input'))}", None
    if kind == "union_type":
        return f"expected {ctx['expected']}, got {_type_name(err.get('input'))}", None
    msg = err["msg"]
    got = err.get("input")
    hint = None
    if kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"{msg[0].lower()}{msg[1:]}, got {_type_name(got)}"
    if kind == "string_type" and isinstance(got, (bool, int, float)):
        hint = "quote the value to make it a string (YAML reads 0755 as a number, true as a boolean)"
    elif kind == "bool_type" and isinstance(got, str):
        hint = "write true or false; YAML 1.2 reads yes/no/on/off as strings"
    return msg[0].lower() + msg[1:], hint


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string '{value}'" if len(value) < 40 else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


#: Errors that only say "this value is of the wrong kind", and what kind was expected.
_SHAPE_ERRORS = {
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list", "string_type": "a string", "int_type": "an integer", "float_type": "a number",
    "bool_type": "a boolean", "none_required": "null",
}


def _node(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def locate(doc: Document, path: tuple) -> Location:
    """Where to report a problem with the value at ``path``.

    A scalar: the value itself.  A whole mapping or list: its key (``replicas:``), not
    the first line inside the block, which is about something else.
    """
    path = tuple(path)
    if path in doc.positions.keys and isinstance(_node(doc.data, path), (dict, list)):
        return doc.positions.key(path)
    return doc.positions.value(path)


def _drop_union_mismatches(errors: list[tuple[tuple, Any, dict]]) -> list[tuple[tuple, Any, dict]]:
    """Drop "wrong type" errors of union members the value was plainly not meant for.

    A value of a ``list | Range`` field that is a mapping fails both members: the list
    member with "expected a list", the Range member with what is really wrong.  When
    the same path has another, more specific error, or a path below it has any error,
    the shape errors at that path are noise.  Shape errors of several members that
    are all that is wrong ("expected a list", "expected a mapping") become one.
    """
    out = []
    shapes: dict[tuple, list[dict]] = {}
    for path, rest, err in errors:
        if err["type"] in _SHAPE_ERRORS:
            specific = any(  # another member got further: it has errors below, or not about the shape
                other is not err and p[: len(path)] == path and (len(p) > len(path) or other["type"] not in _SHAPE_ERRORS)
                for p, _, other in errors
            )
            if specific:
                continue
            if path in shapes:  # another member of the same union: merge into one error
                shapes[path].append(err)
                continue
            shapes[path] = [err]
        out.append((path, rest, err))
    for i, (path, rest, err) in enumerate(out):
        members = shapes.get(path, [])
        if len(members) > 1 and members[0] is err:
            expected = list(dict.fromkeys(_SHAPE_ERRORS[e["type"]] for e in members))
            merged = {**err, "type": "union_type", "ctx": {"expected": " or ".join(expected)}}
            out[i] = (path, rest, merged)
    return out


def errors_from_validation(exc: ValidationError, doc: Document, root: type[BaseModel]) -> list[SpecError]:
    out: list[SpecError] = []
    located = [(*_loc_to_path(doc.data, tuple(err["loc"])), err) for err in exc.errors(include_url=False)]
    for path, rest, err in _drop_union_mismatches(located):
        kind = err["type"]
        if kind == "extra_forbidden":
            key = path[-1] if path else rest
            loc = doc.positions.key(path)
            parent = path[:-1]
            keys = allowed_keys(root, doc.data, parent)
            hint = did_you_mean(str(key), keys) or (f"allowed keys: {', '.join(keys)}" if keys else None)
            where = f" in {dotted(parent)}" if parent else ""
            out.append(_at(loc, f"unknown key '{key}'{where}", hint, "unknown-key", path))
            continue
        if kind == "missing":
            loc = doc.positions.key(path)
            missing = rest if rest is not None else (path[-1] if path else "?")
            where = f" in {dotted(path)}" if path else ""
            out.append(_at(loc, f"missing required key '{missing}'{where}", None, "missing-key", path))
            continue
        message, hint = _message(err)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, m.FieldError) and isinstance(_node(doc.data, path), dict) and cause.field in _node(doc.data, path):
            path = path + (cause.field,)  # a model validator's error about one field: point at it
        node = _node(doc.data, path)
        disc = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
        if kind == "union_tag_invalid" and isinstance(node, dict) and disc in node:
            path = path + (disc,)  # point at the unknown tag itself
            loc = doc.positions.value(path)
        else:
            loc = locate(doc, path)
        out.append(_at(loc, f"{dotted(path)}: {message}", hint, kind, path))
    return out


def _at(loc: Location, message: str, hint: str | None, code: str, path: tuple) -> SpecError:
    return SpecError(message, loc.file, loc.line, loc.col, hint=hint, code=code, path=path)


def check_model(doc: Document, model: type[T], what: str = "spec") -> T:
    """Validate ``doc`` against ``model``; raise SpecErrors located in the source."""
    if not isinstance(doc.data, dict):
        loc = doc.positions.value(())
        raise SpecErrors([
            _at(loc, f"the {what} must be a mapping of keys to values, got {_type_name(doc.data)}",
                "start from `mlspec init`", "not-a-mapping", ())
        ])
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecErrors(errors_from_validation(exc, doc, model)) from None


# --- cross-reference checks --------------------------------------------------------------------


class _Checker:
    def __init__(self, spec: m.Spec, doc: Document, base_dir: Path | None,
                 read_columns: Callable[[Path, str | None], dict[str, str]] | None,
                 read_span: SpanReader | None = None):
        self.spec = spec
        self.doc = doc
        self.base_dir = base_dir
        self.read_columns = read_columns
        self.read_span = read_span
        self.errors: list[SpecError] = []
        self._entity_typed: set[str] = set()
        #: Feature services with an unknown view or feature: what depends on them is not checked
        #: again (one typo, one error).
        self._broken_services: set[str] = set()

    def error(self, path: tuple, message: str, hint: str | None = None, code: str = "reference", key: bool = False) -> None:
        loc = self.doc.positions.key(path) if key else locate(self.doc, path)
        self.errors.append(_at(loc, message, hint, code, path))

    def unique(self, items: list, base: tuple, what: str, attr: str = "name") -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = getattr(item, attr)
            if name in seen:
                self.error(base + (i, attr), f"duplicate {what} name '{name}'",
                           f"first defined at {dotted(base + (seen[name],))}", "duplicate-name")
            else:
                seen[name] = i

    def ref(self, path: tuple, name: str, known: list[str], what: str) -> bool:
        if name in known:
            return True
        known = list(dict.fromkeys(known))
        whats = what[:-1] + "ies" if what.endswith("y") else what + "s"
        hint = did_you_mean(name, known) or (f"defined {whats}: {', '.join(known)}" if known else f"no {whats} are defined")
        self.error(path, f"unknown {what} '{name}'", hint)
        return False

    def run(self) -> list[SpecError]:
        s = self.spec
        for key in s.labels:
            reserved = next((p for p in RESERVED_LABEL_PREFIXES if key.startswith(p)), None)
            if reserved:
                self.error(("labels", key), f"label key '{key}' uses the prefix '{reserved}', which mlspec sets itself",
                           "choose another prefix, e.g. 'acme.com/" + key.split('/', 1)[1] + "'", "label", key=True)
        self.unique(s.data.sources, ("data", "sources"), "source")
        self.unique(s.features.entities, ("features", "entities"), "entity")
        self.unique(s.features.views, ("features", "views"), "feature view")
        self.unique(s.features.services, ("features", "services"), "feature service")
        self.sources()
        columns = self.source_columns()
        self.check_types(columns)
        self.views(columns)
        self.services()
        self.training(columns)
        self.serving()
        self.drift()
        return self.errors

    # sources -----------------------------------------------------------------------------
    def sources(self) -> None:
        names = [src.name for src in self.spec.data.sources]
        batch = [src.name for src in self.spec.data.sources if src.type in m.BATCH_SOURCE_TYPES]
        for i, src in enumerate(self.spec.data.sources):
            base = ("data", "sources", i)
            if src.type in ("kafka", "push"):
                if self.ref(base + ("batch_source",), src.batch_source, names, "source") and src.batch_source not in batch:
                    self.error(base + ("batch_source",), f"batch_source '{src.batch_source}' is a {self.spec.source(src.batch_source).type} source",
                               f"batch sources: {', '.join(batch)}")
            self.checks_columns(src, base)
            if getattr(src, "table", None) is not None:
                self.table_name(src, base)
            for cname in src.columns:
                if not cname:
                    self.error(base + ("columns", cname), "empty column name", key=True)

    def table_name(self, src, base: tuple) -> None:
        """A warehouse table name is plain identifiers, as many as the dialect takes; mlspec
        quotes each part (see :func:`quote_table`), so nothing in it can end the quotes."""
        problem = table_problem(src.type, src.table)
        if problem:
            self.error(base + ("table",), f"table '{src.table}' is not a {src.type} table name: {problem}",
                       "write a table name, or use query: for SQL", "table")

    def checks_columns(self, src, base: tuple) -> None:
        if not src.columns:
            return
        for j, check in enumerate(src.checks):
            if hasattr(check, "columns"):
                paths = [(col, base + ("checks", j, "columns", k)) for k, col in enumerate(check.columns)]
            else:
                paths = [(check.column, base + ("checks", j, "column"))] if hasattr(check, "column") else []
            for col, path in paths:
                if col not in src.columns:
                    self.error(path, f"check {check.type} names column '{col}', which source '{src.name}' does not declare",
                               did_you_mean(col, list(src.columns)))

    def check_types(self, columns: dict[str, dict[str, str]]) -> None:
        """A check's values must be of its column's type: a range needs a number column,
        allowed values the column's own type (``"0"`` never equals the int 0)."""
        numeric = ("int32", "int64", "float32", "float64")
        for i, src in enumerate(self.spec.data.sources):
            cols = columns.get(src.name) or {}
            base = ("data", "sources", i)
            for j, check in enumerate(src.checks):
                dtype = cols.get(getattr(check, "column", None) or "")
                if dtype is None or dtype == "unknown":
                    continue
                if check.type == "range" and dtype not in numeric + ("unix_timestamp", "date"):
                    self.error(base + ("checks", j, "column"), f"range check on column '{check.column}', which is {dtype}",
                               "a range needs a numeric column; use allowed_values for strings", "check-type")
                elif check.type == "range" and dtype in ("unix_timestamp", "date"):
                    self.error(base + ("checks", j, "column"), f"range check on timestamp column '{check.column}'",
                               "a range compares numbers; check timestamps with not_null", "check-type")
                elif check.type == "allowed_values":
                    for k, value in enumerate(check.values):
                        if isinstance(value, bool):
                            ok = dtype == "bool"
                        elif isinstance(value, (int, float)):
                            ok = dtype in numeric
                        else:
                            ok = dtype in ("string", "bytes")
                        if not ok:
                            shown = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value
                            hint = (f"write {value} without quotes" if isinstance(value, str) and dtype in numeric
                                    and _is_number(value) else f"give {dtype} values")
                            self.error(base + ("checks", j, "values", k), f"allowed value {shown} is a "
                                       f"{_type_name(value).split()[0]}, but column '{check.column}' is {dtype}",
                                       hint, "check-type")

    def source_columns(self) -> dict[str, dict[str, str]]:
        """Known columns of each source: declared, checked against local files where present."""
        known: dict[str, dict[str, str]] = {}
        for i, src in enumerate(self.spec.data.sources):
            base = ("data", "sources", i)
            cols = dict(src.columns)
            if src.type == "file" and self.base_dir is not None and self.read_columns is not None and "://" not in src.path:
                cols = self.file_columns(src, base, cols)
            if cols and src.timestamp and src.timestamp not in cols:
                self.error(base + ("timestamp",), f"timestamp column '{src.timestamp}' is not a column of source '{src.name}'",
                           did_you_mean(src.timestamp, list(cols)), "column")
            if cols and src.created_timestamp and src.created_timestamp not in cols:
                self.error(base + ("created_timestamp",), f"created_timestamp column '{src.created_timestamp}' is not a column of source '{src.name}'",
                           did_you_mean(src.created_timestamp, list(cols)), "column")
            known.setdefault(src.name, cols)  # a duplicate name is reported; the first one counts
        return known

    def compatible(self, source: str, declared: str, actual: str) -> bool:
        """Whether a column declared ``declared`` accepts ``actual`` in ``source``; a CSV file
        has no number widths, so there any float width takes a float column and any int width an int one."""
        from .datafiles import compatible

        if compatible(declared, actual):
            return True
        src = self.spec.source(source)
        if src is not None and src.type in ("kafka", "push"):
            src = self.spec.source(src.batch_source)
        if src is None or src.type != "file" or src.file_format != "csv":
            return False
        if declared in ("float32", "float64"):
            return actual in ("float32", "float64", "int32", "int64")
        return declared in ("int32", "int64") and actual in ("int32", "int64")

    def file_columns(self, src, base: tuple, declared: dict[str, str]) -> dict[str, str]:
        from .datafiles import DataFileError

        path = (self.base_dir / src.path)
        if not path.exists():
            self.error(base + ("path",), f"data file '{src.path}' does not exist (looked in {self.base_dir})",
                       "paths are relative to the spec file; use a URI (s3://, gs://) for remote data", "missing-file")
            return declared
        try:
            actual = self.read_columns(path, src.file_format)
        except (DataFileError, OSError) as exc:
            self.error(base + ("path",), f"cannot read '{src.path}' as {src.file_format}: {exc}", code="data-file")
            return declared
        for cname, dtype in declared.items():
            path_ = base + ("columns", cname)
            if cname not in actual:
                self.error(path_, f"column '{cname}' is not in {src.path}", did_you_mean(cname, list(actual))
                           or f"the file has: {', '.join(actual)}", "column", key=True)
            elif not self.compatible(src.name, dtype, actual[cname]):
                self.error(path_, f"column '{cname}' is declared {dtype} but {src.path} holds {actual[cname]}",
                           code="column-type")
        return {**actual, **declared}

    # features ------------------------------------------------------------------------------
    def views(self, columns: dict[str, dict[str, str]]) -> None:
        sources = [src.name for src in self.spec.data.sources]
        entities = [e.name for e in self.spec.features.entities]
        for i, view in enumerate(self.spec.features.views):
            base = ("features", "views", i)
            names: dict[str, tuple] = {}
            for j, f in enumerate(view.fields):
                names.setdefault(f.name, base + ("fields", j, "name"))
            for j, agg in enumerate(view.aggregations):
                if agg.output_name in names:
                    self.error(base + ("aggregations", j), f"feature '{agg.output_name}' is defined twice in view '{view.name}'",
                               code="duplicate-name")
                names.setdefault(agg.output_name, base + ("aggregations", j))
            dupes = [f.name for f in view.fields]
            for j, f in enumerate(view.fields):
                if dupes.index(f.name) != j:
                    self.error(base + ("fields", j, "name"), f"duplicate field name '{f.name}' in view '{view.name}'",
                               code="duplicate-name")
            for j, ent in enumerate(view.entities):
                self.ref(base + ("entities", j), ent, entities, "entity")
            ttl = units.parse_duration(view.ttl)
            for j, agg in enumerate(view.aggregations):
                if ttl and units.parse_duration(agg.window) > ttl:
                    self.error(base + ("aggregations", j, "window"), f"window {agg.window} is longer than the ttl "
                               f"{view.ttl} of view '{view.name}': values older than the ttl are never served",
                               "shorten the window, or raise ttl (0s: unbounded)", "window")
            if not self.ref(base + ("source",), view.source, sources, "source"):
                continue
            src = self.spec.source(view.source)
            if not src.timestamp and src.type not in ("kafka", "push"):
                self.error(base + ("source",), f"source '{src.name}' has no timestamp column; feature views need one",
                           "set data.sources[].timestamp", "timestamp")
            elif not src.timestamp:
                batch = self.spec.source(src.batch_source)
                if batch is not None and not batch.timestamp:
                    self.error(base + ("source",), f"{src.type} source '{src.name}' and its batch_source '{batch.name}' "
                               "have no timestamp column; feature views need one",
                               f"set timestamp on source '{src.name}' or '{batch.name}'", "timestamp")
            cols = columns.get(view.source) or {}
            if src.type in ("kafka", "push") and not cols:
                cols = columns.get(src.batch_source) or {}
            if not cols:
                continue
            for j, ent in enumerate(view.entities):
                e = self.spec.entity(ent)
                if e is not None and e.join_key not in cols:
                    self.error(base + ("entities", j), f"join key '{e.join_key}' of entity '{ent}' is not a column of source '{src.name}'",
                               did_you_mean(e.join_key, list(cols)), "column")
                elif e is not None:
                    self.entity_type(e, src.name, cols[e.join_key])
            for j, f in enumerate(view.fields):
                if f.name not in cols:
                    self.error(base + ("fields", j, "name"), f"field '{f.name}' is not a column of source '{src.name}'",
                               did_you_mean(f.name, list(cols)), "column")
                elif not self.compatible(src.name, f.dtype, cols[f.name]):
                    self.error(base + ("fields", j, "dtype"), f"field '{f.name}' is {f.dtype} but column '{f.name}' of source '{src.name}' is {cols[f.name]}",
                               code="column-type")
            for j, agg in enumerate(view.aggregations):
                if agg.column not in cols:
                    self.error(base + ("aggregations", j, "column"), f"aggregation column '{agg.column}' is not a column of source '{src.name}'",
                               did_you_mean(agg.column, list(cols)), "column")
                elif agg.function != "count" and cols[agg.column] in ("string", "bytes", "bool"):
                    self.error(base + ("aggregations", j, "function"), f"cannot {agg.function} column '{agg.column}' of type {cols[agg.column]}",
                               "use count, or aggregate a numeric column", "column-type")

    def entity_type(self, e: m.Entity, source: str, actual: str) -> None:
        """An entity's dtype must be its join-key column's type (reported once per entity)."""
        if e.name in self._entity_typed or self.compatible(source, e.dtype, actual):
            return
        self._entity_typed.add(e.name)
        k = next(i for i, x in enumerate(self.spec.features.entities) if x.name == e.name)
        path = ("features", "entities", k)
        node = _node(self.doc.data, path)
        written = isinstance(node, dict) and "dtype" in node
        said = f"dtype {e.dtype}" if written else f"the default dtype {e.dtype}"
        self.error(path + ("dtype",) if written else path, f"entity '{e.name}' has {said}, but its join key "
                   f"'{e.join_key}' is {actual} in source '{source}'",
                   f"set dtype: {actual}" if actual not in ("unknown",) else None, "column-type",
                   key=not written)

    def services(self) -> None:
        views = [v.name for v in self.spec.features.views]
        for i, svc in enumerate(self.spec.features.services):
            base = ("features", "services", i)
            seen: dict[str, str] = {}
            for j, ref in enumerate(svc.features):
                view_name, _, feature = ref.partition(":")
                if not self.ref(base + ("features", j), view_name, views, "feature view"):
                    self._broken_services.add(svc.name)
                    continue
                view = self.spec.view(view_name)
                if feature and feature not in view.feature_names:
                    self._broken_services.add(svc.name)
                    self.error(base + ("features", j), f"view '{view_name}' has no feature '{feature}'",
                               did_you_mean(feature, view.feature_names) or f"its features: {', '.join(view.feature_names)}")
                    continue
                for fname in [feature] if feature else view.feature_names:
                    if fname in seen and seen[fname] != view_name:
                        self.error(base + ("features", j), f"feature '{fname}' comes from both '{seen[fname]}' and '{view_name}'",
                                   "feature names within a service must be unique; rename one", "duplicate-name")
                    seen[fname] = view_name

    # training ------------------------------------------------------------------------------
    def training(self, columns: dict[str, dict[str, str]]) -> None:
        t = self.spec.training
        base = ("training",)
        sources = [src.name for src in self.spec.data.sources]
        if self.ref(base + ("label", "source"), t.label.source, sources, "source"):
            if not self.spec.source(t.label.source).timestamp:
                self.error(base + ("label", "source"), f"label source '{t.label.source}' has no timestamp column",
                           "features are joined as of each label's time; set its timestamp", "timestamp")
            cols = columns.get(t.label.source) or {}
            if cols and t.label.column not in cols:
                self.error(base + ("label", "column"), f"label column '{t.label.column}' is not a column of source '{t.label.source}'",
                           did_you_mean(t.label.column, list(cols)), "column")
            if cols:
                self.label_keys(t, cols)
        self.ref(base + ("feature_service",), t.feature_service, [s.name for s in self.spec.features.services], "feature service")
        self.metric(t)
        self.leakage(t)
        self.feature_types(t)
        size = grid_size(t.search)
        if t.search.strategy == "grid" and size > MAX_GRID:
            dims = " × ".join(f"{len(v)}" for v in t.search.parameters.values())
            self.error(base + ("search", "parameters"), f"the grid has {size:,} combinations ({dims}); the cap is {MAX_GRID}",
                       "narrow the grid, or use strategy: random with a trials budget", "grid-size")
        self.resources(t.resources, base + ("resources",))
        self.timezone(t)
        self.split(t)

    def split(self, t: m.Training) -> None:
        """The combinations of ``training.split`` that mean something."""
        split, base = t.split, ("training", "split")
        if split.strategy == "random":
            for key in ("cutoff", "gap"):
                if getattr(split, key) is not None:
                    self.error(base + (key,), f"{key} applies to a time split, but the split strategy is random",
                               f"set strategy: time, or remove {key}", "split")
            return
        if split.stratify:
            self.error(base + ("stratify",), "a time split cannot stratify: the hold-out is the latest labels, "
                       "whatever their classes", "remove stratify, or use strategy: random", "split")
        if split.cutoff is not None and "test_size" in split.model_fields_set:
            self.error(base + ("test_size",), "give test_size or cutoff, not both: the cutoff decides what is held out",
                       "remove test_size to hold out everything at or after the cutoff", "split")
        if split.gap is not None and units.parse_duration(split.gap) == 0:
            self.error(base + ("gap",), "a gap of 0 is no embargo", "remove gap, or give the embargo, e.g. 7d", "split")
            return
        self.split_parts(t)

    def split_parts(self, t: m.Training) -> None:
        """A time split over a local label file must leave both parts non-empty.  Only what is
        sure from the file's earliest and latest label time (the rows training keeps are a
        subset, so the verdict holds for them): with a cutoff, no label at or after it (an
        empty hold-out) or none more than ``gap`` before it (an empty training part); with
        ``test_size``, every label within ``gap`` of the latest (the hold-out always has one)."""
        from datetime import datetime, timezone

        src = self.spec.source(t.label.source)
        if src is not None and src.type in ("kafka", "push"):
            src = self.spec.source(src.batch_source)
        if (self.read_span is None or self.base_dir is None or src is None or src.type != "file"
                or "://" in src.path or not src.timestamp or not (self.base_dir / src.path).is_file()):
            return
        span = self.read_span(self.base_dir / src.path, src.file_format, src.timestamp)
        if span is None:
            return
        split, base = t.split, ("training", "split")
        gap_us = units.parse_duration(split.gap) * 1_000_000 if split.gap else 0

        def when(us: float) -> str:
            return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat().replace("+00:00", "Z")

        labels = f"the labels in {src.path} run from {when(span[0])} to {when(span[1])}"
        if split.cutoff is not None:
            cutoff = (units.parse_timestamp(split.cutoff) - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1e6
            if span[1] < cutoff:
                self.error(base + ("cutoff",), f"time split: the hold-out would be empty, no label is at or after the "
                           f"cutoff {split.cutoff} ({labels})", "move the cutoff into the labels' time range, or "
                           "use test_size to hold out the latest fraction", "split")
            elif span[0] >= cutoff - gap_us:
                where = "before the cutoff" if not gap_us else f"more than the gap {split.gap} before the cutoff"
                self.error(base + ("gap" if gap_us and span[0] < cutoff else "cutoff",), f"time split: the training part "
                           f"would be empty, no label is {where} {split.cutoff} ({labels})",
                           "move the cutoff later" + (" or shorten the gap" if gap_us else ""), "split")
        elif span[0] >= span[1] - gap_us:
            one_time = span[0] == span[1]
            what = "all labels share one time" if one_time else f"every label is within the gap {split.gap} of the latest"
            self.error(base + ("gap",) if gap_us and not one_time else base + ("strategy",), f"time split: the training "
                       f"part would be empty, {what} ({labels}), so nothing is old enough to train on",
                       "shorten the gap" if gap_us and not one_time else
                       "a time split needs labels at more than one time: use strategy: random, or more labels", "split")

    def timezone(self, t: m.Training) -> None:
        """``training.timezone`` must name a zone of the IANA tz database (Kubernetes loads the
        CronJob's ``timeZone`` with Go's ``time.LoadLocation``, which refuses anything else)."""
        if t.timezone == "Etc/UTC":
            return
        zones = available_timezones()
        if t.timezone in zones:
            return
        folded = {z.lower(): z for z in zones}
        hint = (f"did you mean '{folded[t.timezone.lower()]}'? zone names are case-sensitive" if t.timezone.lower() in folded
                else did_you_mean(t.timezone, sorted(zones)) or "an IANA zone name such as Europe/Berlin or America/New_York")
        self.error(("training", "timezone"), f"unknown time zone '{t.timezone}'", hint, "timezone")

    def feature_types(self, t: m.Training) -> None:
        """What the estimator is fitted on: numbers, and string features that
        ``training.preprocessing`` encodes as categories.  Bytes and timestamps are neither (the
        step would fail at run time: "could not convert string to float"), nor is a string
        feature when ``categorical`` is none; ``preprocessing.features`` names served features,
        and scales or imputes numbers only.  Plain loops over the served features: no scikit-learn."""
        pre, base = t.preprocessing, ("training", "preprocessing")
        if t.estimator is None:
            if pre != m.Preprocessing():
                self.error(base, "training.preprocessing applies to estimator training; the container "
                           f"{t.container.image} is given the raw feature table", "remove training.preprocessing, "
                           "or prepare the features in the container", "preprocessing", key=True)
            return
        if t.feature_service in self._broken_services or self.spec.service(t.feature_service) is None:
            return  # reported once, where the service is
        index = {v.name: i for i, v in enumerate(self.spec.features.views)}
        served: dict[str, tuple[str, str, tuple | None]] = {}  # feature -> (view, dtype, path of its dtype)
        for view_name, feature in self.spec.served_features(t.feature_service):
            view = self.spec.view(view_name)
            j = next((k for k, f in enumerate(view.fields) if f.name == feature), None)
            if j is None:  # an aggregation: numbers (one over strings other than count is reported in views())
                served.setdefault(feature, (view_name, "float64", None))
            else:
                path = ("features", "views", index[view_name], "fields", j, "dtype")
                served.setdefault(feature, (view_name, view.fields[j].dtype, path))
        for name, how in pre.features.items():
            if name not in served:
                self.error(base + ("features", name), f"training.preprocessing.features names '{name}', which feature "
                           f"service '{t.feature_service}' does not serve", did_you_mean(name, list(served))
                           or f"served features: {', '.join(served)}", "preprocessing", key=True)
            elif served[name][1] == "string" and how.categorical is None:
                key = "numeric" if how.numeric is not None else "impute"
                self.error(base + ("features", name, key), f"feature '{name}' is a string: it is encoded as "
                           f"categories, not {'scaled' if key == 'numeric' else 'imputed'}",
                           "give it categorical: one_hot or ordinal instead", "preprocessing")
        for feature, (view_name, dtype, path) in served.items():
            override = pre.features.get(feature)
            if dtype in ("bytes", "unix_timestamp", "date"):
                example = "" if dtype == "bytes" else " (e.g. days since the timestamp)"
                self.error(path, f"feature '{feature}' of view '{view_name}' is {dtype}: the estimator {t.estimator} "
                           "is fitted on numbers and categories, and preprocessing encodes neither bytes nor "
                           "timestamps (training would fail at run time: could not convert string to float)",
                           f"derive a number or a category from it in the source{example}, or leave it out of "
                           f"feature service '{t.feature_service}'", "feature-type")
            elif dtype == "string" and pre.categorical == "none" and (override is None or override.categorical is None):
                self.error(path, f"feature '{feature}' of view '{view_name}' is string, but training.preprocessing."
                           f"categorical is none: the estimator {t.estimator} is fitted on numbers (training would "
                           "fail: could not convert string to float)", "set training.preprocessing.categorical: "
                           f"one_hot (or ordinal, or per feature under preprocessing.features), encode it as numbers "
                           f"in the source, or leave it out of feature service '{t.feature_service}'", "feature-type")

    def leakage(self, t: m.Training) -> None:
        """The model must not see its label, nor what was recorded with it:

        * no served feature is the label column, and no served view aggregates the label
          column of the label source;
        * no served *field* comes from a view over the label source (or a stream whose batch
          log it is): the point-in-time join would read it from the label's own row, written
          with the outcome (e.g. a balance after the default it is meant to predict);
        * an aggregation over the label source keeps its window open on the right (``closed:
          left``, the default, or ``neither``), so the label's own row never counts.

        ``training.label.snapshot: true`` says the label source's other columns were recorded
        before the outcome was known (a snapshot table): then its fields and rows may be served.
        History of the label source strictly before the label -- an aggregation of another
        column with the default ``closed: left`` (e.g. a card's transaction count in the last
        hour, for a fraud label on each transaction) -- is allowed: it was known before."""
        if t.feature_service in self._broken_services:
            return
        index = {v.name: i for i, v in enumerate(self.spec.features.views)}
        served = self.spec.served_features(t.feature_service)
        label_batch = {t.label.source}
        same_row: dict[str, list[str]] = {}
        for view_name, feature in served:
            view = self.spec.view(view_name)
            base = ("features", "views", index[view_name])
            source = self.spec.source(view.source)
            sources = {view.source} | ({source.batch_source} if source is not None and source.type in ("kafka", "push") else set())
            over_labels = bool(sources & label_batch)
            j = next((k for k, f in enumerate(view.fields) if f.name == feature), None)
            if j is not None:
                if feature == t.label.column:
                    self.error(base + ("fields", j, "name"), f"label leakage: feature '{feature}' of view '{view_name}' is "
                               f"the label column '{t.label.column}' the model is trained to predict",
                               "remove it from the view, or serve the view without it", "leakage")
                elif over_labels and not t.label.snapshot:
                    same_row.setdefault(view_name, []).append(feature)
                continue
            k, agg = next((k, a) for k, a in enumerate(view.aggregations) if a.output_name == feature)
            if agg.column == t.label.column and over_labels:
                self.error(base + ("aggregations", k, "column"), f"label leakage: feature '{feature}' of view '{view_name}' "
                           f"aggregates the label column '{t.label.column}' of the label source '{t.label.source}'",
                           "aggregate other columns; the model must not see its own label", "leakage")
            elif feature == t.label.column:
                self.error(base + ("aggregations", k), f"label leakage: feature '{feature}' of view '{view_name}' has the "
                           f"name of the label column '{t.label.column}'", "name the aggregation differently", "leakage")
            elif over_labels and agg.closed in ("right", "both") and not t.label.snapshot:
                self.error(base + ("aggregations", k, "closed"), f"label leakage: feature '{feature}' of view "
                           f"'{view_name}' aggregates the label source '{t.label.source}' with closed: {agg.closed}, "
                           "so each label's own row counts in its features",
                           "remove closed (the default, left, ends the window strictly before the label), or "
                           "set training.label.snapshot: true if the row's other columns were recorded before the "
                           "outcome", "leakage")
        for view_name, features in same_row.items():
            listed = ", ".join(f"'{f}'" for f in features)
            self.error(("features", "views", index[view_name], "source"), f"label leakage: view '{view_name}' reads "
                       f"the label source '{t.label.source}', so field(s) {listed} would be joined from each label's "
                       "own row, recorded with the outcome", "read these features from a source of their own (what "
                       "was known before the label), aggregate them over the label source's earlier rows (an "
                       "aggregation's default closed: left ends strictly before the label), or, if every other "
                       "column was recorded before the outcome, say so with training.label.snapshot: true", "leakage")

    def metric(self, t: m.Training) -> None:
        """The metric's direction and range, the estimator, and whether they fit each other."""
        base = ("training",)
        info = METRICS[t.metric.name]
        if t.metric.goal != info.goal:
            self.error(base + ("metric", "goal"), f"metric {t.metric.name} is {info.goal[:-1]}ed; goal {t.metric.goal} "
                       "would select the worst candidate", f"set goal: {info.goal}", "metric")
        if not (info.low <= t.metric.threshold <= info.high):
            bounds = (f"between {info.low:g} and {info.high:g}" if math.isfinite(info.low) and math.isfinite(info.high)
                      else f"at least {info.low:g}" if math.isfinite(info.low) else f"at most {info.high:g}")
            hint = "a fraction, not a percentage: 0.55, not 55" if info.high == 1.0 and t.metric.threshold > 1 else None
            self.error(base + ("metric", "threshold"), f"threshold {t.metric.threshold:g} is out of range: "
                       f"{t.metric.name} is {bounds}", hint, "metric")
        kind = self.estimator(t)
        regression = (kind or info.kind) == "regressor"
        if kind in ("classifier", "regressor") and kind != info.kind:
            fitting = ", ".join(n for n, i in METRICS.items() if i.kind == kind)
            self.error(base + ("metric", "name"), f"metric {t.metric.name} scores a {info.kind}, but {t.estimator} is a {kind}",
                       f"metrics for a {kind}: {fitting}", "metric")
        elif kind == "classifier" and info.proba and not self._estimator_entry(t)["predict_proba"]:
            self.error(base + ("metric", "name"), f"metric {t.metric.name} needs predict_proba, which {t.estimator} does not have",
                       "use accuracy, f1, precision or recall, or an estimator with predict_proba", "metric")
        if t.split.stratify and regression and t.split.strategy != "time":
            self.error(base + ("split", "stratify"), "stratify needs class labels, but this is a regression "
                       f"({t.estimator if kind == 'regressor' else 'metric ' + t.metric.name})",
                       "remove stratify, or train a classifier", "split")

    def _estimator_entry(self, t: m.Training) -> dict | None:
        from . import estimators

        if t.estimator is None or not estimators.is_sklearn(t.estimator):
            return None
        return estimators.lookup(t.estimator)

    def estimator(self, t: m.Training) -> str | None:
        """Check a scikit-learn estimator against the committed table; its kind, or None (unknown)."""
        from . import estimators

        if t.estimator is None or not estimators.is_sklearn(t.estimator):
            return None
        base = ("training",)
        entry = estimators.lookup(t.estimator)
        if entry is None:
            known = estimators.public_paths()
            cls = t.estimator.rpartition(".")[2]
            same = [p for p in known if p.rpartition(".")[2] == cls]
            hint = (f"did you mean '{same[0]}'?" if same else did_you_mean(t.estimator, known)
                    or did_you_mean(cls, [p.rpartition(".")[2] for p in known]))
            version = estimators.table()["sklearn_version"]
            self.error(base + ("estimator",), f"scikit-learn {version} has no estimator '{t.estimator}'",
                       hint or "give the import path of a scikit-learn classifier or regressor", "estimator")
            return None
        if entry["kind"] not in ("classifier", "regressor"):
            self.error(base + ("estimator",), f"{t.estimator} is not a classifier or regressor",
                       "training needs an estimator that predicts the label", "estimator")
            return None
        if not entry["var_kwargs"]:
            for name in t.search.parameters:
                if name not in entry["parameters"]:
                    self.error(base + ("search", "parameters", name), f"{t.estimator} has no parameter '{name}'",
                               did_you_mean(name, entry["parameters"]) or f"its parameters: {', '.join(entry['parameters'])}",
                               "estimator", key=True)
        missing = [p for p in entry["required"] if p not in t.search.parameters]
        if missing:
            self.error(base + ("estimator",), f"{t.estimator} needs parameter(s) {', '.join(missing)}, which the search does not set",
                       "choose an estimator that works with its defaults", "estimator")
        return entry["kind"]

    def label_keys(self, t: m.Training, cols: dict[str, str]) -> None:
        """Training rows are the label rows: they must carry every join key the features need."""
        views = dict.fromkeys(view for view, _ in self.spec.served_features(t.feature_service))
        missing: dict[tuple[str, str], list[str]] = {}  # (entity, join key) -> views that need it
        for view_name in views:
            for ent in self.spec.view(view_name).entities:
                entity = self.spec.entity(ent)
                if entity is not None and entity.join_key not in cols:
                    missing.setdefault((ent, entity.join_key), []).append(view_name)
                elif entity is not None:
                    self.entity_type(entity, t.label.source, cols[entity.join_key])
        for (ent, key), needed_by in missing.items():  # one error per key, however many views need it
            names = " and ".join(f"'{v}'" for v in needed_by)
            self.error(("training", "label", "source"),
                       f"label source '{t.label.source}' has no column '{key}', the join key of entity "
                       f"'{ent}' that feature view{'s' if len(needed_by) > 1 else ''} {names} need{'' if len(needed_by) > 1 else 's'}",
                       f"add '{key}' to source '{t.label.source}', or drop {names} from the feature service",
                       "column")

    def resources(self, res: m.Resources, base: tuple) -> None:
        for key in ("cpu", "memory"):
            req, lim = getattr(res.requests, key), getattr(res.limits, key)
            if req is not None and lim is not None and units.parse_quantity(req) > units.parse_quantity(lim):
                self.error(base + ("requests", key), f"{key} request {req} exceeds its limit {lim}", code="resources")

    # serving -------------------------------------------------------------------------------
    def serving(self) -> None:
        sv = self.spec.serving
        base = ("serving",)
        tr = sv.traffic
        if sv.rollout == "shadow":
            if tr.challenger != 0:
                self.error(base + ("traffic", "challenger"), "a shadow rollout mirrors traffic to the challenger; its share must be 0",
                           "set traffic: {champion: 100, challenger: 0}", "traffic")
            elif tr.champion != 100:
                self.error(base + ("traffic", "champion"), f"traffic sums to {tr.champion}%, not 100%", code="traffic")
            if sv.challenger is None:
                self.error(base + ("rollout",), "a shadow rollout needs a challenger model", "set serving.challenger.uri", "traffic")
        elif tr.champion + tr.challenger != 100:
            self.error(base + ("traffic",), f"traffic sums to {tr.champion + tr.challenger}% "
                       f"(champion {tr.champion} + challenger {tr.challenger}), not 100%", code="traffic")
        if tr.challenger > 0 and sv.challenger is None:
            self.error(base + ("traffic", "challenger"), f"{tr.challenger}% of traffic goes to a challenger, but no challenger model is set",
                       "set serving.challenger.uri, or send 100% to the champion", "traffic")
        if sv.autoscaling is not None and sv.replicas.max == sv.replicas.min:
            self.error(base + ("autoscaling",), f"autoscaling has no room: replicas.min = replicas.max = {sv.replicas.min}",
                       "raise replicas.max", "autoscaling")
        self.resources(sv.resources, base + ("resources",))

    # drift ---------------------------------------------------------------------------------
    def drift(self) -> None:
        d = self.spec.drift
        if d is None:
            return
        base = ("drift",)
        service = self.spec.training.feature_service
        served = [f for _, f in self.spec.served_features(service)]
        broken = service in self._broken_services or self.spec.service(service) is None
        from .drift_methods import method_problem

        dtypes = {} if broken else self.spec.served_dtypes(service)
        strings = [f for f, dtype in dtypes.items() if dtype == "string"]
        if strings:
            self.error(base, f"drift detection reads each served request as one tensor of numbers, but feature service "
                       f"'{service}' serves string feature(s) {', '.join(repr(f) for f in strings)}, so the model is "
                       "served one column per feature (raw values for its encoder)",
                       "encode them as numbers in the source to monitor this model, or remove drift", "drift")
        for j, feature in enumerate([] if broken else d.features):  # a broken service is reported once, there
            if feature not in served:
                self.error(base + ("features", j), f"drift feature '{feature}' is not served by feature service '{self.spec.training.feature_service}'",
                           did_you_mean(feature, served) or "monitor features the model actually receives")
            elif (problem := method_problem(d.method, dtypes.get(feature, "float64"))) is not None:
                self.error(base + ("features", j), f"drift feature '{feature}' ({dtypes.get(feature)}): {problem}",
                           code="drift")
        if d.reference.source is not None and self.ref(base + ("reference", "source"), d.reference.source,
                                                       [src.name for src in self.spec.data.sources], "source"):
            src = self.spec.source(d.reference.source)
            declared = getattr(src, "columns", None) or {}
            lacking = [f for f in d.features if declared and f not in declared]
            if lacking:
                self.error(base + ("reference", "source"), f"reference source '{src.name}' has no column "
                           f"{', '.join(repr(f) for f in lacking)}: the detector compares served features with it",
                           "leave reference.source out to use the training frame, which holds every served feature")
        if d.action == "rollback" and self.spec.serving.challenger is None:
            self.error(base + ("action",), "action rollback needs a challenger to roll back from",
                       "use alert or retrain, or set serving.challenger", "drift")


#: Per warehouse: identifier pattern of each part of ``table``, how many parts it may have,
#: what the parts are, and the identifier quote the compiler wraps each part in.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
TABLE_DIALECTS: dict[str, tuple[tuple[str, ...], tuple[int, int], str, str]] = {
    # BigQuery: [project.]dataset.table; project IDs take '-', table names '-' too
    "bigquery": ((r"[a-z][a-z0-9-]*[a-z0-9]", r"[A-Za-z0-9_]+", r"[A-Za-z0-9_][A-Za-z0-9_-]*"), (2, 3),
                 "[project.]dataset.table", "`"),
    "postgres": ((_IDENT, _IDENT), (1, 2), "[schema.]table (at most 63 characters each)", '"'),
    "redshift": ((_IDENT,), (1, 1), "one table name; the schema is the source's schema:", '"'),
    "snowflake": ((_IDENT, _IDENT, _IDENT), (1, 3), "[[database.]schema.]table", '"'),
}


def table_problem(dialect: str, table: str) -> str | None:
    """Why ``table`` is not a table name of ``dialect``, or None."""
    import re

    patterns, (low, high), shape, _ = TABLE_DIALECTS[dialect]
    parts = table.split(".")
    if not low <= len(parts) <= high:
        return f"expected {shape}"
    # the last pattern is the table's; earlier parts take the patterns before it, right-aligned
    for part, pattern in zip(parts, patterns[len(patterns) - len(parts):]):
        if not re.fullmatch(pattern, part):
            return f"'{part}' is not a plain identifier (expected {shape})"
        if dialect in ("postgres", "redshift") and len(part) > 63:
            return f"'{part}' is over 63 characters"
    return None


def quote_table(dialect: str, table: str, schema: str | None = None) -> str:
    """The one way mlspec writes a (validated) table name into SQL: every part in the dialect's
    identifier quotes; Redshift's schema comes from the source's ``schema``."""
    quote = TABLE_DIALECTS[dialect][3]
    parts = ([schema] if dialect == "redshift" and schema else []) + table.split(".")
    return ".".join(f"{quote}{part}{quote}" for part in parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def available_timezones() -> frozenset[str]:
    """The IANA zone names of the tz database (the OS's, else the ``tzdata`` package); stdlib only."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def grid_size(search: m.Search) -> int:
    if search.strategy == "random":
        return search.trials or 0
    return math.prod(len(v) for v in search.parameters.values()) if search.parameters else 1


ColumnReader = Callable[[Path, "str | None"], "dict[str, str]"]
SpanReader = Callable[[Path, "str | None", str], "tuple[float, float] | None"]


def cross_check(spec: m.Spec, doc: Document, base_dir: Path | None, reader: ColumnReader | None = None,
                span_reader: SpanReader | None = None) -> list[SpecError]:
    """Checks across fields; ``reader`` reads a local data file's columns (None: skip files),
    ``span_reader`` a column's earliest and latest time, as :func:`mlspec.datafiles.time_span`
    (None: time splits are not checked against the label file)."""
    return _Checker(spec, doc, base_dir, reader, span_reader).run()


def check_overrides(spec: m.Spec, doc: Document, known_envs: list[str]) -> list[SpecError]:
    out = []
    for env in spec.overrides:
        if env not in known_envs:
            loc = doc.positions.key(("overrides", env))
            hint = did_you_mean(env, known_envs) or (f"known environments: {', '.join(known_envs)}" if known_envs else "no environments/ folder found")
            out.append(_at(loc, f"overrides name unknown environment '{env}'", hint, "unknown-env", ("overrides", env)))
    return out


def policy_check(spec: m.Spec, doc: Document, env: Any, env_file: str) -> list[SpecError]:
    """Enforce the environment's policy caps on a resolved spec."""
    out: list[SpecError] = []
    p = env.policies

    def fail(path: tuple, message: str, policy: str) -> None:
        out.append(_at(locate(doc, path), f"{message} (policy {policy} of environment '{env.name}')",
                       f"see {env_file}; override the value for '{env.name}' under overrides.{env.name}", "policy", path))

    sv = spec.serving
    if p.max_challenger_traffic is not None and sv.traffic.challenger > p.max_challenger_traffic:
        fail(("serving", "traffic", "challenger"), f"challenger traffic {sv.traffic.challenger}% exceeds {p.max_challenger_traffic}%",
             "max_challenger_traffic")
    if p.min_replicas is not None and sv.replicas.min < p.min_replicas:
        fail(("serving", "replicas", "min"), f"serving.replicas.min is {sv.replicas.min}, below {p.min_replicas}", "min_replicas")
    if p.require_drift and spec.drift is None:
        removed = doc.positions.removed.get(("drift",))
        if removed is not None:  # an override's `drift: null` took it away: point at that
            out.append(SpecError(f"this removes the drift policy, which environment '{env.name}' requires "
                                 "(policy require_drift)", removed.file, removed.line, removed.col,
                                 hint=f"see {env_file}; keep a drift block for '{env.name}'", code="policy",
                                 path=("drift",)))
        else:
            fail((), "no drift policy is set", "require_drift")
    if p.require_resource_limits and (sv.resources.limits.cpu is None or sv.resources.limits.memory is None):
        fail(("serving", "resources"), "serving sets no CPU and memory limits", "require_resource_limits")
    return out


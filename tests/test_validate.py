"""mlspec.validate: pydantic errors mapped to file:line:col, cross-reference checks, policies.

The corpus (test_corpus.py) covers each check end to end; these tests pin the
mapping rules themselves and the checks' corner cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlspec import models as m
from mlspec import validate as v
from mlspec.environments import Environment
from mlspec.errors import SpecError, SpecErrors
from mlspec.loader import load_text
from mlspec.project import resolve, resolve_paths

CORPUS = Path(__file__).resolve().parent / "corpus"
MINIMAL = (CORPUS / "valid" / "minimal.yaml").read_text(encoding="utf-8")


def errors_of(text: str, *, base_dir: Path | None = None, reader=None) -> list[SpecError]:
    """Model errors, or else cross-check errors, of a spec given as text."""
    doc = load_text(text, "spec.yaml")
    try:
        spec = v.check_model(doc, m.Spec)
    except SpecErrors as exc:
        return exc.errors
    return sorted(v.cross_check(spec, doc, base_dir, reader), key=lambda e: (e.line, e.col))


def where(errors: list[SpecError]) -> list[tuple[int, int, str]]:
    return [(e.line, e.col, e.message) for e in errors]


def edit(*pairs: str, text: str = MINIMAL) -> str:
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


# --- mapping pydantic errors -------------------------------------------------------------------


def test_minimal_spec_is_valid_without_files() -> None:
    assert errors_of(MINIMAL) == []


def test_check_model_rejects_non_mappings() -> None:
    for text, got in (("- a\n", "a list"), ("3\n", "number 3"), ("'x'\n", "string 'x'"), ("true\n", "boolean true")):
        with pytest.raises(SpecErrors) as info:
            v.check_model(load_text(text, "s.yaml"), m.Spec)
        [err] = info.value.errors
        assert err.message == f"the spec must be a mapping of keys to values, got {got}"
        assert (err.line, err.col, err.code) == (1, 1, "not-a-mapping")


def test_unknown_key_is_located_at_the_key_with_a_hint() -> None:
    [err] = [e for e in errors_of(edit("  runtime: kserve\n", "  runtime: kserve\n  protocl: v1\n")) if "unknown" in e.message]
    assert (err.line, err.col, err.message, err.hint, err.code) == (
        28, 3, "unknown key 'protocl' in serving", "did you mean 'protocol'?", "unknown-key")
    assert err.path == ("serving", "protocl")


def test_unknown_key_hint_lists_allowed_keys_when_nothing_is_close() -> None:
    [err] = errors_of(edit("  champion: {uri: gs://acme-models/minimal/v1}",
                           "  champion: {uri: gs://acme-models/minimal/v1, zzz: 1}"))
    assert err.hint == "allowed keys: uri, version"


def test_unknown_key_in_a_union_member_uses_that_members_keys() -> None:
    text = edit("      timestamp: event_timestamp\n", "      timestamp: event_timestamp\n      formt: csv\n")
    [err] = errors_of(text)
    assert (err.message, err.hint) == ("unknown key 'formt' in data.sources[0]", "did you mean 'format'?")
    bq = edit("      type: file\n      path: ../data/customers.csv\n",
              "      type: bigquery\n      tabel: acme.crm.customers\n      table: acme.crm.customers\n")
    [err] = errors_of(bq)
    assert err.hint == "did you mean 'table'?"


def test_aliased_keys_are_suggested_by_their_alias() -> None:
    text = edit("      type: file\n      path: ../data/customers.csv\n",
                "      type: snowflake\n      database: D\n      schemaa: S\n      table: T\n"
                "      credentials: {service_account: sf}\n")
    messages = {(e.message, e.hint) for e in errors_of(text)}
    assert ("unknown key 'schemaa' in data.sources[0]", "did you mean 'schema'?") in messages
    assert ("missing required key 'schema' in data.sources[0]", None) in messages


def test_missing_key_is_located_at_the_parent_key() -> None:
    errors = errors_of(edit("  model_format: sklearn\n", ""))
    assert where(errors) == [(26, 1, "missing required key 'model_format' in serving")]


def test_wrong_type_of_a_scalar_points_at_the_value() -> None:
    errors = errors_of(edit("  model_format: sklearn\n", "  model_format: sklearn\n  replicas: {min: two}\n"))
    assert where(errors) == [(29, 19, "serving.replicas.min: input should be a valid integer, got string 'two'")]


def test_errors_about_a_block_point_at_its_key() -> None:
    text = edit("  model_format: sklearn\n", "  model_format: sklearn\n  replicas:\n    min: 4\n    max: 2\n")
    assert where(errors_of(text)) == [(29, 3, "serving.replicas: min (4) is greater than max (2)")]


def test_strict_types_refuse_lax_coercions() -> None:
    """YAML already typed every value; pydantic must not turn 'yes' into True or '2' into 2."""
    cases = [
        ("online: yes", "input should be a valid boolean, got string 'yes'"),
        ("online: 1", "input should be a valid boolean, got number 1"),
        ("online: 'true'", "input should be a valid boolean, got string 'true'"),
    ]
    for line, message in cases:
        text = edit("      entities: [customer]\n", f"      entities: [customer]\n      {line}\n")
        [err] = errors_of(text)
        assert err.message == f"features.views[0].online: {message}"
    [err] = errors_of(edit("  estimator:", "  parallelism: '2'\n  estimator:"))
    assert err.message == "training.parallelism: input should be a valid integer, got string '2'"
    [err] = errors_of(edit("  estimator:", "  parallelism: true\n  estimator:"))
    assert err.message == "training.parallelism: input should be a valid integer, got boolean true"
    # an integer where a number is expected is fine
    assert errors_of(edit("threshold: 0.5", "threshold: 1")) == []


def test_string_type_hint_for_numbers() -> None:
    [err] = errors_of(edit("  champion: {uri: gs://acme-models/minimal/v1}",
                           "  champion: {uri: gs://acme-models/minimal/v1, version: 1.10}"))
    assert err.message == "serving.champion.version: input should be a valid string, got number 1.1"
    assert "quote the value" in err.hint


def test_union_tag_errors_point_at_the_tag() -> None:
    [err] = errors_of(edit("      type: file\n", "      type: fiel\n"))
    assert (err.line, err.col) == (7, 13)
    assert err.message.startswith("data.sources[0].type: unknown type 'fiel'; expected one of 'file', 'bigquery'")
    assert err.hint == "did you mean 'file'?"
    [err] = errors_of(edit("      type: file\n", ""))
    assert (err.line, err.col, err.message) == (6, 7, "data.sources[0]: missing key 'type'")


def test_union_members_that_do_not_fit_are_not_reported() -> None:
    """A mapping for a ``list | Range`` parameter: only the Range's own problem is shown."""
    text = edit("  estimator:", "  search:\n    strategy: random\n    trials: 5\n    parameters:\n"
                "      a: {min: 1}\n      b: {min: 1, max: 2, scale: logarithmic}\n      c: 5\n      d: [1, {x: 1}]\n"
                "  estimator:")
    assert where(errors_of(text)) == [
        (28, 7, "missing required key 'max' in training.search.parameters.a"),
        (29, 34, "training.search.parameters.b.scale: 'logarithmic' is not one of 'linear' or 'log'"),
        # neither member fits: one error naming both
        (30, 10, "training.search.parameters.c: expected a list or a mapping, got number 5"),
        (31, 14, "training.search.parameters.d[1]: expected a boolean or an integer or a number or a string, "
                 "got a mapping"),
    ]


def test_pattern_messages_are_readable() -> None:
    [err] = errors_of(edit("  estimator: sklearn.linear_model.LogisticRegression",
                           "  estimator: LogisticRegression"))
    assert err.message == ("training.estimator: must be a dotted Python import path such as "
                           "sklearn.ensemble.RandomForestClassifier")
    [err] = errors_of(edit("owner: ml@acme.example\n", "owner: ml@acme.example\nci: {python: '3'}\n"))
    assert err.message == "ci.python: '3' does not match the pattern ^3\\.\\d{1,2}$"


def test_labels_are_checked_one_by_one() -> None:
    text = edit("owner: ml@acme.example\n", "owner: ml@acme.example\nlabels:\n  a: ok\n  b: not ok\n  c: fine\n")
    assert where(errors_of(text)) == [
        (6, 6, "labels.b: label value 'not ok' is not a valid Kubernetes label value: at most 63 letters, "
               "digits, '-', '_' or '.', starting and ending with a letter or digit"),
    ]


def test_allowed_keys_follows_the_models() -> None:
    data = {"data": {"sources": [{"type": "kafka"}]}, "serving": {}, "labels": {}}
    assert "bootstrap_servers" in v.allowed_keys(m.Spec, data, ("data", "sources", 0))
    assert v.allowed_keys(m.Spec, data, ("serving",))[:2] == ["runtime", "model_format"]
    assert "apiVersion" in v.allowed_keys(m.Spec, data, ())
    assert v.allowed_keys(m.Spec, data, ("labels",)) == []
    assert v.allowed_keys(m.Spec, data, ("nope", "deeper")) == []


def test_dotted() -> None:
    assert v.dotted(()) == "(root)"
    assert v.dotted(("features", "views", 0, "name")) == "features.views[0].name"


# --- cross checks -----------------------------------------------------------------------------


def test_unknown_reference_hint_lists_names_without_duplicates() -> None:
    text = edit("      source: customers\n", "      source: zzz\n",
                "      path: ../data/customers.csv\n", "      path: s3://b/c.csv\n")
    [err] = errors_of(text)
    assert (err.message, err.hint) == ("unknown source 'zzz'", "defined sources: customers")
    text = edit("      entities: [customer]\n", "      entities: [customer, zzz]\n",
                "      path: ../data/customers.csv\n", "      path: s3://b/c.csv\n")
    assert errors_of(text)[0].hint == "defined entities: customer"


def test_duplicate_source_keeps_the_first_definitions_columns() -> None:
    """A duplicate name is one error; it does not make the first source's columns vanish."""
    text = edit("    - name: customers\n      type: file\n      path: ../data/customers.csv\n      timestamp: event_timestamp\n",
                "    - name: customers\n      type: file\n      path: s3://b/c.csv\n      timestamp: event_timestamp\n"
                "      columns: {customer_id: int64, tenure_months: int64, support_calls: int64, event_timestamp: unix_timestamp}\n"
                "    - name: customers\n      type: file\n      path: s3://b/other.csv\n      timestamp: t\n      columns: {t: unix_timestamp}\n")
    assert [(e.message, e.hint) for e in errors_of(text)] == [
        ("duplicate source name 'customers'", "first defined at data.sources[0]"),
    ]


def test_files_are_not_read_without_a_reader(tmp_path: Path) -> None:
    text = edit("../data/customers.csv", "../data/nope.csv")
    assert errors_of(text, base_dir=tmp_path, reader=None) == []
    [err] = errors_of(text, base_dir=tmp_path, reader=lambda p, f: {})
    assert err.message == "data file '../data/nope.csv' does not exist (looked in %s)" % tmp_path
    assert err.code == "missing-file"


def test_unreadable_data_file_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_bytes(b"customer_id,plan\n1,\xff\n")
    spec = tmp_path / "spec" / "mlops.yaml"
    spec.parent.mkdir()
    spec.write_text(MINIMAL, encoding="utf-8")
    [err] = resolve(spec, [], tmp_path / "no-envs").errors
    assert (err.line, err.col, err.code) == (8, 13, "data-file")
    assert err.message.startswith("cannot read '../data/customers.csv' as csv: line 2, column 3: file is not UTF-8")


def test_remote_paths_are_not_checked(tmp_path: Path) -> None:
    text = edit("../data/customers.csv", "gs://bucket/customers.csv")
    assert errors_of(text, base_dir=tmp_path, reader=lambda p, f: pytest.fail("read a remote path")) == []


def test_kafka_view_uses_the_batch_sources_columns() -> None:
    text = edit(
        "    - name: customers\n      type: file\n      path: ../data/customers.csv\n      timestamp: event_timestamp\n",
        "    - name: customers\n      type: kafka\n      bootstrap_servers: [k:9092]\n      topic: t\n      batch_source: log\n"
        "      timestamp: event_timestamp\n"
        "    - name: log\n      type: file\n      path: s3://b/log.parquet\n      timestamp: event_timestamp\n"
        "      columns: {customer_id: int64, tenure: int64, support_calls: int64, event_timestamp: unix_timestamp}\n",
    )
    [err] = errors_of(text)
    assert (err.message, err.hint) == ("field 'tenure_months' is not a column of source 'customers'", "did you mean 'tenure'?")


#: An estimator outside scikit-learn: its parameter names are not checked (no table knows them).
CUSTOM = "acme.models.Custom"


def test_grid_size_and_cap() -> None:
    assert v.grid_size(m.Search()) == 1
    assert v.grid_size(m.Search(parameters={"a": [1, 2, 3], "b": [1, 2]})) == 6
    assert v.grid_size(m.Search(strategy="random", trials=7, parameters={"a": [1]})) == 7
    params = "".join(f"      p{i}: [1, 2]\n" for i in range(8))  # 2**8 = 256: at the cap
    custom = ("sklearn.linear_model.LogisticRegression", CUSTOM)
    assert errors_of(edit("  estimator:", f"  search:\n    parameters:\n{params}  estimator:", *custom)) == []
    params += "      p8: [1, 2]\n"  # 512
    [err] = errors_of(edit("  estimator:", f"  search:\n    parameters:\n{params}  estimator:", *custom))
    assert (err.line, err.col, err.code) == (25, 5, "grid-size")  # the parameters: key
    assert err.message == "the grid has 512 combinations (2 × 2 × 2 × 2 × 2 × 2 × 2 × 2 × 2); the cap is 256"


def test_random_search_is_not_capped_by_the_grid() -> None:
    big = "".join(f"      p{i}: [1, 2, 3, 4]\n" for i in range(6))  # 4096 combinations
    text = edit("  estimator:", f"  search:\n    strategy: random\n    trials: 50\n    parameters:\n{big}  estimator:",
                "sklearn.linear_model.LogisticRegression", CUSTOM)
    assert errors_of(text) == []


def test_reserved_label_prefixes_are_refused() -> None:
    for key in ("mlspec.io/environment", "app.kubernetes.io/managed-by"):
        text = edit("name: minimal", f"name: minimal\nlabels:\n  {key}: x")
        [err] = errors_of(text)
        assert err.code == "label" and (err.line, err.col) == (4, 3)
        assert f"label key '{key}' uses the prefix" in err.message and "which mlspec sets itself" in err.message
    assert errors_of(edit("name: minimal", "name: minimal\nlabels:\n  acme.com/team: growth")) == []


def test_request_equal_to_limit_is_fine() -> None:
    ok = edit("  model_format: sklearn\n", "  model_format: sklearn\n  resources:\n"
              "    requests: {cpu: 1000m, memory: 1Gi}\n    limits: {cpu: '1', memory: 1024Mi}\n")
    assert errors_of(ok) == []
    big = edit("  model_format: sklearn\n", "  model_format: sklearn\n  resources:\n"
               "    requests: {memory: 2Ei}\n    limits: {memory: 1E}\n")
    [err] = errors_of(big)
    assert err.message == "memory request 2Ei exceeds its limit 1E"


# --- policies ----------------------------------------------------------------------------------


def _env(**policies) -> Environment:
    return Environment.model_validate({
        "name": "prod", "namespace": "ml-prod", "registry": "r", "argocd": {"repo_url": "https://g/x"},
        "storage": {"artifacts": "s3://b/p"}, "policies": policies,
    })


def test_policies() -> None:
    text = edit("  champion: {uri: gs://acme-models/minimal/v1}\n",
                "  champion: {uri: gs://acme-models/minimal/v1}\n  challenger: {uri: gs://acme-models/minimal/v2}\n"
                "  traffic: {champion: 50, challenger: 50}\n")
    doc = load_text(text, "spec.yaml")
    spec = v.check_model(doc, m.Spec)
    assert v.policy_check(spec, doc, _env(), "prod.yaml") == []
    assert v.policy_check(spec, doc, _env(max_challenger_traffic=50), "prod.yaml") == []
    errors = v.policy_check(spec, doc, _env(max_challenger_traffic=49, min_replicas=2, require_drift=True,
                                            require_resource_limits=True), "envs/prod.yaml")
    assert where(errors) == [
        (31, 39, "challenger traffic 50% exceeds 49% (policy max_challenger_traffic of environment 'prod')"),
        (26, 1, "serving.replicas.min is 1, below 2 (policy min_replicas of environment 'prod')"),
        (2, 1, "no drift policy is set (policy require_drift of environment 'prod')"),
        (26, 1, "serving sets no CPU and memory limits (policy require_resource_limits of environment 'prod')"),
    ]
    assert all(e.code == "policy" and "see envs/prod.yaml" in e.hint and "overrides.prod" in e.hint for e in errors)


def test_check_overrides() -> None:
    text = MINIMAL + "overrides:\n  dev: {}\n  prdo: {}\n"
    doc = load_text(text, "spec.yaml")
    spec = v.check_model(doc, m.Spec)
    assert where(v.check_overrides(spec, doc, ["dev", "prod"])) == [(32, 3, "overrides name unknown environment 'prdo'")]
    errors = v.check_overrides(spec, doc, [])
    assert [e.hint for e in errors] == ["no environments/ folder found"] * 2


def test_resolve_paths_deduplicates_errors_across_environments(tmp_path: Path) -> None:
    """An error in the spec itself is reported once, not once per environment."""
    spec = tmp_path / "mlops.yaml"
    spec.write_text(edit("      source: customers\n", "      source: custmers\n",
                         "../data/", (CORPUS / "data").as_posix() + "/"), encoding="utf-8")
    result = resolve_paths([spec], ["dev", "staging"], CORPUS / "environments")
    located = [(e.line, e.col, e.message) for e in result.errors]
    assert located.count((15, 15, "unknown source 'custmers'")) == 1
    assert len(located) == len(set(located))



def test_cross_check_on_a_valid_corpus_spec_reads_each_file_once(tmp_path: Path) -> None:
    calls = []

    def reader(path: Path, fmt):
        calls.append(path.name)
        from mlspec.datafiles import read_columns
        return read_columns(path, fmt)

    path = CORPUS / "valid" / "full.yaml"
    doc = load_text(path.read_text(encoding="utf-8"), str(path))
    spec = v.check_model(doc, m.Spec)
    assert v.cross_check(spec, doc, path.parent, reader) == []
    assert sorted(calls) == ["customers.csv", "labels.csv", "transactions.csv"]


def test_shadow_and_traffic_rules_for_each_rollout() -> None:
    def serving(extra: str) -> list[tuple[int, int, str]]:
        return [(e.line, e.col, e.message) for e in errors_of(edit(
            "  champion: {uri: gs://acme-models/minimal/v1}\n", "  champion: {uri: gs://acme-models/minimal/v1}\n" + extra))]

    ch = "  challenger: {uri: gs://m/v2}\n"
    assert serving(ch + "  rollout: ab\n  traffic: {champion: 50, challenger: 50}\n") == []
    assert serving(ch + "  rollout: shadow\n") == []  # defaults: 100 / 0
    assert serving("  traffic: {champion: 100, challenger: 0}\n") == []
    assert serving(ch + "  traffic: {champion: 0, challenger: 100}\n") == []
    assert serving("  rollout: ab\n  traffic: {champion: 60, challenger: 60}\n") == [
        (31, 3, "traffic sums to 120% (champion 60 + challenger 60), not 100%"),
        (31, 39, "60% of traffic goes to a challenger, but no challenger model is set"),
    ]


def test_drift_reference_and_actions() -> None:
    drift = "drift:\n  method: ks\n  p_value: 0.3\n  features: [tenure_months]\n  reference: {ref}\n  action: {action}\n"
    assert errors_of(MINIMAL + drift.format(ref="{path: s3://r}", action="alert")) == []
    assert errors_of(MINIMAL + drift.format(ref="{source: customers}", action="retrain")) == []
    assert errors_of(MINIMAL + drift.format(ref="{}", action="retrain")) == []  # the training frame
    assert where(errors_of(MINIMAL + drift.format(ref="{source: customer}", action="rollback"))) == [
        (34, 23, "unknown source 'customer'"),
        (35, 11, "action rollback needs a challenger to roll back from"),
    ]
    assert where(errors_of(MINIMAL + drift.replace("method: ks", "method: psi").format(ref="{path: s3://r}",
                                                                                     action="alert"))) == [
        (31, 11, "drift.method: 'psi' is not one of 'ks', 'chi2', 'tabular' or 'mmd'"),
    ]

"""The mlops.yaml spec as pydantic models.

One :class:`Spec` describes one ML system: where its data comes from and what it must
look like, the features built from it, how a model is trained and gated, how it is
served (champion and challenger), how drift is watched and what happens then, and
how it is delivered (CI, GitOps).  Unknown keys are errors everywhere.

Credentials are never literals: a field that needs one takes a reference
(:class:`SecretRef` -- a Kubernetes Secret name and key -- or a service account name).

Checks that need more than one field (references between sections, traffic sums,
local data files) live in :mod:`mlspec.validate`; checks on a single value live here.
"""

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from . import units

SPEC_API_VERSION = "mlspec.io/v1alpha1"

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
IMAGE = r"^[a-z0-9][a-z0-9._\-/:@]*[a-zA-Z0-9_]$"
MODEL_URI = r"^(gs|s3|pvc|https?|oci|hf|file)://\S+$"

DType = Literal["int32", "int64", "float32", "float64", "string", "bool", "bytes", "unix_timestamp"]

Name = Annotated[str, Field(pattern=IDENTIFIER, description="An identifier: letters, digits and '_' (≤ 63 chars).")]
K8sLabel = Annotated[str, Field(pattern=DNS1123_LABEL, description="A DNS-1123 label (≤ 63 chars).")]
Duration = Annotated[
    str,
    Field(pattern=units.DURATION_PATTERN, description="A duration such as 30d, 12h, 90m, 1h30m."),
    AfterValidator(units.check_duration),
]
Cron = Annotated[
    str,
    AfterValidator(units.check_cron),
    Field(description="A five-field cron expression, or @hourly/@daily/@weekly/@monthly/@yearly."),
]
Quantity = Annotated[str, Field(pattern=units.QUANTITY_PATTERN, description="A Kubernetes quantity such as 500m, 2, 4Gi.")]
LabelKey = Annotated[str, AfterValidator(units.check_label_key)]
LabelValue = Annotated[str, AfterValidator(units.check_label_value)]


class FieldError(ValueError):
    """A model validator's error about one of the model's fields: reported at that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _empty_list() -> list:
    return []


def _empty_dict() -> dict:
    return {}


#: ``default_factory=list`` costs pydantic an ``inspect.signature(list)``, which parses list's
#: text signature with the tokenizer (~4 ms the first time, for its regex); these are the same.
_PLAIN_FACTORIES = {list: _empty_list, dict: _empty_dict}


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # as with default_factory: no "default" in the JSON Schema


class Model(BaseModel):
    """The base of every model of the spec and the environment files.

    Models are built lazily (``defer_build``): a validator is made when a model first
    validates, with every model it nests, and nothing is built twice for the models
    nested in it -- a nested model's default (``default_factory=Resources``, a target's
    settings block) is the empty mapping validated by the parent's validator, not a call
    of the nested model, which would build that model's own validator as well."""

    # strict: YAML already types every value; pydantic's lax coercions ("yes" -> True,
    # 1 -> True, "42" -> 42) would undo the YAML 1.2 core schema the loader applies.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for info in cls.model_fields.values():  # before any build (defer_build): the schema sees this
            factory = info.default_factory
            if not isinstance(factory, type):
                continue
            if factory in _PLAIN_FACTORIES:
                changes: dict[str, Any] = {"default_factory": _PLAIN_FACTORIES[factory]}
            elif issubclass(factory, Model) and info.json_schema_extra is None:
                # calling the model validates {}: the same instance, by the parent's validator
                changes = {"default_factory": None, "default": {}, "validate_default": True,
                           "json_schema_extra": _no_default}
            else:
                continue
            for name, value in changes.items():
                setattr(info, name, value)
            explicit = getattr(info, "_attributes_set", None)  # what pydantic copies into a subclass's field
            if isinstance(explicit, dict):
                explicit.update(changes)
                if changes["default_factory"] is None:
                    explicit.pop("default_factory", None)


# --- shared pieces -----------------------------------------------------------------------


class SecretRef(Model):
    """A reference to a key in a Kubernetes Secret; never the secret itself."""

    secret: K8sLabel = Field(description="Name of the Kubernetes Secret.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret.")


class Credentials(Model):
    """How a workload authenticates: a Secret reference and/or a service account."""

    secret_ref: SecretRef | None = Field(None, description="Secret holding the credential.")
    service_account: K8sLabel | None = Field(None, description="Kubernetes service account (workload identity).")

    @model_validator(mode="after")
    def _one(self) -> "Credentials":
        if self.secret_ref is None and self.service_account is None:
            raise ValueError("give secret_ref or service_account")
        return self


class ResourceList(Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpu: int | None = Field(None, ge=0, le=16, description="Number of nvidia.com/gpu.")


class Resources(Model):
    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)


# --- data ---------------------------------------------------------------------------------


class RowCountCheck(Model):
    type: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> "RowCountCheck":
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class NotNullCheck(Model):
    type: Literal["not_null"]
    columns: list[str] = Field(min_length=1)


class RangeCheck(Model):
    type: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "RangeCheck":
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self


class AllowedValuesCheck(Model):
    type: Literal["allowed_values"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class UniqueCheck(Model):
    type: Literal["unique"]
    columns: list[str] = Field(min_length=1)


Check = Annotated[
    Union[RowCountCheck, NotNullCheck, RangeCheck, AllowedValuesCheck, UniqueCheck],
    Field(discriminator="type"),
]


class SourceBase(Model):
    name: Name
    description: str | None = None
    timestamp: str | None = Field(None, description="Event-timestamp column (required for feature sources).")
    created_timestamp: str | None = Field(None, description="Row-creation timestamp column, for deduplication.")
    columns: dict[str, DType] = Field(default_factory=dict, description="Declared columns and their types.")
    checks: list[Check] = Field(default_factory=list, description="Data-quality checks run before training.")


class FileSource(SourceBase):
    type: Literal["file"]
    path: str = Field(description="Path or URI (relative paths are relative to the spec file).")
    format: Literal["parquet", "csv"] | None = Field(None, description="Default: from the file extension.")

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        return "csv" if self.path.lower().endswith((".csv", ".csv.gz")) else "parquet"


class TableOrQuery(SourceBase):
    table: str | None = Field(
        None, description="A table name: dot-separated identifiers (letters, digits, '_'; see the source type for how many "
                          "parts), checked by validate and quoted by mlspec with the warehouse's identifier quotes, so it "
                          "is case-sensitive: write it as the warehouse stores it.")
    query: str | None = Field(
        None, description="Raw SQL, run as written: mlspec neither quotes nor checks it (it is your SQL, reviewed like "
                          "code). Use table for a plain table read.")

    @model_validator(mode="after")
    def _table_or_query(self) -> "TableOrQuery":
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        return self


class BigQuerySource(TableOrQuery):
    type: Literal["bigquery"]
    project: str | None = None
    credentials: Credentials | None = None


class SnowflakeSource(TableOrQuery):
    type: Literal["snowflake"]
    database: str
    schema_: str = Field(alias="schema")
    warehouse: str | None = None
    credentials: Credentials

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class PostgresSource(TableOrQuery):
    type: Literal["postgres"]
    host: str
    port: int = Field(5432, ge=1, le=65535)
    database: str
    credentials: Credentials


class RedshiftSource(TableOrQuery):
    type: Literal["redshift"]
    cluster_id: str
    region: str
    database: str
    user: str | None = Field(None, description="Database user name (not a password).")
    schema_: str = Field("public", alias="schema")
    credentials: Credentials | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class KafkaSource(SourceBase):
    type: Literal["kafka"]
    bootstrap_servers: list[str] = Field(min_length=1)
    topic: str
    message_format: Literal["json", "avro", "protobuf"] = "json"
    batch_source: Name = Field(description="Batch source with the same columns, for backfill and training.")
    watermark_delay: Duration | None = None
    credentials: Credentials | None = None


class PushSource(SourceBase):
    type: Literal["push"]
    batch_source: Name = Field(description="Batch source the pushed rows are also logged to.")


Source = Annotated[
    Union[FileSource, BigQuerySource, SnowflakeSource, PostgresSource, RedshiftSource, KafkaSource, PushSource],
    Field(discriminator="type"),
]
BATCH_SOURCE_TYPES = ("file", "bigquery", "snowflake", "postgres", "redshift")


class Data(Model):
    sources: list[Source] = Field(min_length=1)


# --- features -----------------------------------------------------------------------------


class Entity(Model):
    name: Name
    join_key: str
    dtype: DType = "int64"
    description: str | None = None


class FieldSpec(Model):
    name: Name
    dtype: DType
    description: str | None = None


def _positive_duration(text: str) -> str:
    if units.parse_duration(text) <= 0:
        raise ValueError(f"a window of {text} holds no rows; give a positive duration such as 30d")
    return text


class Aggregation(Model):
    column: str
    function: Literal["sum", "mean", "min", "max", "count", "std", "last"]
    window: Annotated[Duration, AfterValidator(_positive_duration)] = Field(
        description="How far back the aggregation looks from each row's timestamp (positive; at most the view's ttl "
                    "when the view sets one).")
    name: Name | None = Field(None, description="Default: <column>_<function>_<window>.")
    closed: Literal["left", "right", "both", "neither"] = Field(
        "left", description="Which edges of the window count at a label time t, as pandas' rolling(closed=...). "
                            "left (the default): rows from t - window up to but not including t, so a row at the "
                            "label's own time (the event being predicted) never feeds its features; right: "
                            "(t - window, t], rows at t included; both: [t - window, t]; neither: (t - window, t).")

    @property
    def output_name(self) -> str:
        return self.name or f"{self.column}_{self.function}_{self.window}"


class FeatureView(Model):
    name: Name
    source: Name
    entities: list[Name] = Field(min_length=1)
    ttl: Duration = Field(
        "0s", description="How old a feature value may be and still be served or joined; 0s (the default): unbounded, "
                          "the latest value however old. Aggregation windows must fit in it.")
    fields: list[FieldSpec] = Field(default_factory=list)
    aggregations: list[Aggregation] = Field(default_factory=list)
    online: bool = True
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_features(self) -> "FeatureView":
        if not self.fields and not self.aggregations:
            raise ValueError("a feature view needs fields or aggregations")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.fields] + [a.output_name for a in self.aggregations]


class FeatureService(Model):
    name: Name
    features: list[str] = Field(
        min_length=1,
        description="Feature views ('view') or single features ('view:feature').",
    )
    description: str | None = None

    @field_validator("features")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        for ref in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)?$", ref):
                raise ValueError(f"'{ref}' is not 'view' or 'view:feature'")
        return value


class Features(Model):
    entities: list[Entity] = Field(min_length=1)
    views: list[FeatureView] = Field(min_length=1)
    services: list[FeatureService] = Field(default_factory=list)
    feature_store: bool = Field(
        True, description="Serve these features from a generated Feast feature store (when the feast target is "
                          "installed); false: no feature store, the training pipeline computes the features itself.")


# --- training -----------------------------------------------------------------------------


class Label(Model):
    source: Name
    column: str
    snapshot: bool = Field(
        False, description="The label source is a snapshot table: every other column of a row was recorded at the "
                           "row's timestamp, before the outcome in the label column was known. Only then may a "
                           "served view read fields from the label source (the point-in-time join reads them from "
                           "the label's own row); otherwise that is refused as label leakage.")


class Container(Model):
    image: str = Field(pattern=IMAGE)
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)


class Range(Model):
    """A numeric range for random search."""

    min: float
    max: float
    scale: Literal["linear", "log"] = "linear"
    type: Literal["int", "float"] = "float"

    @model_validator(mode="after")
    def _bounds(self) -> "Range":
        if self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        if self.scale == "log" and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        return self


ParamValue = Union[bool, int, float, str, None]


class Search(Model):
    strategy: Literal["grid", "random"] = "grid"
    parameters: dict[str, Union[list[ParamValue], Range]] = Field(default_factory=dict)
    trials: int | None = Field(None, ge=1, le=1000, description="Trial budget (random search only).")
    seed: int = 0

    @model_validator(mode="after")
    def _strategy(self) -> "Search":
        for key, values in self.parameters.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"parameter '{key}' has no values")
        if self.strategy == "grid":
            if self.trials is not None:
                raise ValueError("trials applies to random search only")
            ranges = [k for k, v in self.parameters.items() if isinstance(v, Range)]
            if ranges:
                raise ValueError(f"grid search needs value lists, not ranges: {', '.join(ranges)}")
        elif self.trials is None:
            raise ValueError("random search needs a trial budget: set trials")
        return self


class Metric(Model):
    name: Literal[
        "accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "gini", "log_loss",
        "r2", "mae", "mape", "mse", "rmse",
    ]
    goal: Literal["maximize", "minimize"]
    threshold: float = Field(description="Quality gate: the best candidate must reach this.")


class Split(Model):
    strategy: Literal["random", "time"] = Field(
        "random", description="random: a shuffled hold-out; time: the hold-out is the latest labels by the label "
        "source's timestamp (the model is judged on the future, never trained on it).")
    test_size: float = Field(0.2, gt=0, lt=1, description="Fraction held out (time: the latest fraction; rows sharing "
                             "the boundary timestamp are all held out). Not with cutoff.")
    cutoff: Annotated[str, AfterValidator(units.check_timestamp)] | None = Field(
        None, description="time only: hold out every label at or after this ISO 8601 timestamp (naive means UTC), "
        "instead of test_size.")
    gap: Duration | None = Field(None, description="time only: embargo; training labels are more than this before "
                                 "the first held-out label (e.g. the forecast horizon).")
    seed: int = 42
    stratify: bool = Field(False, description="random only: keep the class proportions in both parts.")


Encoding = Literal["one_hot", "ordinal"]
Scaling = Literal["none", "standard", "minmax"]
Imputation = Literal["auto", "none", "mean", "median", "most_frequent"]


class FeaturePreprocessing(Model):
    """How one served feature is prepared, instead of the defaults of `training.preprocessing`:
    either encoded as a category (`categorical`) or scaled and imputed as a number."""

    categorical: Encoding | None = Field(
        None, description="Encode this feature as categories, one_hot or ordinal, whatever its dtype: e.g. an int64 "
                          "store or product code, whose numbers mean nothing as quantities.")
    numeric: Scaling | None = Field(None, description="Scale this numeric feature so (see preprocessing.numeric).")
    impute: Imputation | None = Field(None, description="Fill this numeric feature's missing values so "
                                                        "(see preprocessing.impute).")

    @model_validator(mode="after")
    def _one_kind(self) -> "FeaturePreprocessing":
        if self.categorical is not None:
            for key, verb in (("numeric", "scaled"), ("impute", "imputed")):
                if getattr(self, key) is not None:
                    raise FieldError(key, f"a categorical feature is encoded, not {verb} (a missing value is a category "
                                          f"of its own): give categorical, or numeric/impute")
        elif self.numeric is None and self.impute is None:
            raise ValueError("say how the feature is prepared: categorical, numeric or impute")
        return self


class Preprocessing(Model):
    """How the served features are prepared for the estimator.  The training step fits one
    scikit-learn `Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])` on the
    training part, so the registered model holds the fitted preprocessing, takes the raw feature
    values in the feature service's order, and serving applies exactly the training transforms."""

    categorical: Literal["one_hot", "ordinal", "none"] = Field(
        "one_hot", description="Encoding of string features (and of those preprocessing.features marks categorical), "
        "fitted on the training part. one_hot: one 0/1 column per category seen in training; at serving time an "
        "unseen category is all zeros, never an error; a missing value is a category of its own. ordinal: one column, "
        "each category its number in sorted order (0, 1, ...); an unseen category is -1, a missing value -2 (suits "
        "tree models). none: no encoding; a string feature is then an error.")
    numeric: Scaling = Field(
        "none", description="Scaling of numeric features (int, float, bool fields and aggregations), fitted on the "
        "training part: none; standard (zero mean, unit variance); minmax (to [0, 1] over the training range).")
    impute: Imputation = Field(
        "auto", description="Missing numeric values (a label with no row in the view's ttl, a window with no rows): "
        "auto, the training part's median when the estimator does not accept NaN, else NaN is left for the "
        "estimator (e.g. HistGradientBoosting* use it as information); none, NaN goes to the estimator as it is "
        "(training stops with a message when the estimator rejects it); mean, median or most_frequent of the "
        "training part. Categorical features are not imputed: a missing value is a category of its own.")
    features: dict[Name, FeaturePreprocessing] = Field(
        default_factory=dict, description="Per served feature, instead of the defaults above, e.g. "
        "{store_id: {categorical: one_hot}} for an integer code, {income: {numeric: standard}}.")


def _default_preprocessing(value: "Preprocessing") -> bool:
    return value == Preprocessing()


class Training(Model):
    label: Label
    feature_service: Name
    estimator: str | None = Field(None, pattern=IMPORT_PATH, description="e.g. sklearn.ensemble.GradientBoostingClassifier")
    container: Container | None = None
    search: Search = Field(default_factory=Search)
    parallelism: int = Field(1, ge=1, le=64)
    metric: Metric
    split: Split = Field(default_factory=Split)
    # left out of a dump while it is the default: the resolved document (and so every artefact's
    # inputs hash) of a spec that does not use preprocessing stays what it was before the field existed
    preprocessing: Preprocessing = Field(
        default_factory=Preprocessing, exclude_if=_default_preprocessing,
        description="How the features are encoded, scaled and imputed for the estimator (estimator training "
                    "only; a container trains on the raw feature table). The defaults: string features one-hot "
                    "encoded, numbers as they are, the median for missing numbers when the estimator rejects NaN.")
    schedule: Cron | None = None
    timezone: str = Field("Etc/UTC", description="IANA time zone of the schedule (the CronJob's timeZone), "
                          "e.g. Europe/Berlin; checked against the tz database.")
    resources: Resources = Field(default_factory=Resources)
    image: str | None = Field(None, pattern=IMAGE, description="Image for the pipeline's Python steps.")
    service_account: K8sLabel | None = None

    @model_validator(mode="after")
    def _how(self) -> "Training":
        if (self.estimator is None) == (self.container is None):
            raise ValueError("give exactly one of estimator or container")
        return self


# --- serving ------------------------------------------------------------------------------


class ModelRef(Model):
    uri: str = Field(pattern=MODEL_URI, description="Where the model artefact lives.")
    version: str | None = None


class Traffic(Model):
    champion: int = Field(100, ge=0, le=100)
    challenger: int = Field(0, ge=0, le=100)


class Replicas(Model):
    min: int = Field(1, ge=0, le=1000)
    max: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _order(self) -> "Replicas":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Autoscaling(Model):
    metric: Literal["concurrency", "rps", "cpu", "memory"] | None = Field(
        None, description="Default: what the runtime scales on by default (KServe Knative mode: concurrency; "
                          "KServe Standard mode and Seldon Core v1: cpu).")
    target: int = Field(ge=1, description="Target per replica: requests in flight (concurrency), requests per "
                                          "second (rps), or utilisation % (cpu, memory).")


class Serving(Model):
    runtime: Literal["kserve", "seldon", "seldon-v2"]
    model_format: Literal["sklearn", "xgboost", "lightgbm", "onnx", "tensorflow", "pytorch", "mlflow", "triton"]
    champion: ModelRef
    challenger: ModelRef | None = None
    traffic: Traffic = Field(default_factory=Traffic)
    rollout: Literal["canary", "ab", "shadow"] = Field(
        "ab", description="ab: an explicit split between two named deployments (every runtime); canary: the runtime's "
                          "native canary (KServe: Knative mode only); shadow: the challenger gets mirrored requests.")
    replicas: Replicas = Field(default_factory=Replicas)
    autoscaling: Autoscaling | None = None
    resources: Resources = Field(default_factory=Resources)
    service_account: K8sLabel | None = Field(
        None, description="Service account whose secrets hold the storage credentials (KServe; also set on Seldon pods).")
    storage_secret: K8sLabel | None = Field(
        None, description="Secret with the storage credentials (Seldon v1 envSecretRefName, Seldon Core 2 secretName).")
    protocol: Literal["v1", "v2"] = "v2"
    mirror: int = Field(100, ge=1, le=100, description="Share of requests mirrored to the challenger in a shadow rollout (%).")


# --- drift --------------------------------------------------------------------------------


class Reference(Model):
    """The reference sample the detector compares served requests with (Alibi Detect's ``x_ref``)."""

    source: Name | None = Field(
        None, description="A data source whose rows are the reference; it must hold every monitored feature as a "
                          "column. Default (neither source nor path): the training frame of the registered model, so "
                          "the detector watches the distribution that model was trained on.")
    path: str | None = Field(None, description="Or a CSV or Parquet file (local path or object-store URI) holding the "
                                               "monitored features as columns.")
    sample_size: int = Field(1000, ge=10, le=1_000_000,
                             description="Rows drawn for x_ref (without replacement, seeded by the model version; all "
                                         "rows when there are fewer).")

    @model_validator(mode="after")
    def _one(self) -> "Reference":
        if self.source is not None and self.path is not None:
            raise ValueError("give at most one of source or path (neither: the training frame)")
        return self


#: Drift method -> the Alibi Detect detector that runs it.
DRIFT_DETECTORS = {"ks": "KSDrift", "chi2": "ChiSquareDrift", "tabular": "TabularDrift", "mmd": "MMDDrift"}


class Drift(Model):
    method: Literal["ks", "chi2", "tabular", "mmd"] = Field(
        description="Alibi Detect detector: ks -> KSDrift (numeric features, one Kolmogorov-Smirnov test each), "
                    "chi2 -> ChiSquareDrift (categorical features), tabular -> TabularDrift (KS for numeric, "
                    "Chi-squared for bool features), mmd -> MMDDrift (multivariate; permutation test).")
    features: list[str] = Field(min_length=1, description="Served features to monitor (kept in the served order).")
    p_value: float = Field(0.05, gt=0, lt=1, description="Significance level of the test.")
    correction: Literal["bonferroni", "fdr"] = Field(
        "bonferroni", description="Multiple-testing correction over the features (ks, chi2, tabular).")
    batch_size: int = Field(
        1000, ge=1, le=1_000_000,
        description="Rows per test: the detector accumulates this many served rows, tests them against the "
                    "reference and emits one result (alibi-detect-server --drift_batch_size; Seldon Core 2 "
                    "batch.size). alibi-detect-server batches by row count only, so size it from your traffic: "
                    "rows per second x the time one test should cover.")
    reference: Reference = Field(default_factory=Reference)
    action: Literal["retrain", "alert", "rollback"] = Field(
        description="On drift: retrain (start a run of this environment's PipelineVersion, at most one per "
                    "cooldown), alert (POST the result to a webhook), rollback (a pull request that sends all "
                    "traffic to the champion).")
    cooldown: Annotated[Duration, AfterValidator(_positive_duration)] = Field(
        "24h", description="retrain: no new run while a run of the pipeline started less than this long ago.")
    alert_webhook: SecretRef | None = Field(None, description="Secret holding the alert webhook URL (action alert).")
    detector_uri: str | None = Field(
        None, description="Where the served detector lives. Default: next to the champion model, <uri without its "
                          "trailing /model>/drift-detector, where the training pipeline writes it.")

    @property
    def detector(self) -> str:
        return DRIFT_DETECTORS[self.method]


# --- delivery -----------------------------------------------------------------------------


class CI(Model):
    provider: Literal["github"] = "github"
    python: str = Field("3.11", pattern=r"^3\.\d{1,2}$")
    checks: list[Literal["validate", "compile-check", "kubeconform", "unit-tests"]] = Field(
        default_factory=lambda: ["validate", "compile-check"]
    )


class GitOps(Model):
    provider: Literal["argocd"] = "argocd"
    layout: Literal["env-per-dir"] = "env-per-dir"
    sync: Literal["automated", "manual"] = "automated"
    prune: bool = True
    self_heal: bool = True


# --- the spec -----------------------------------------------------------------------------


class Spec(Model):
    """One ML system."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, title="mlspec spec (mlops.yaml)",
        json_schema_extra={"$id": "https://mlspec.io/schemas/mlops.schema.json"},
    )

    api_version: Literal["mlspec.io/v1alpha1"] = Field(SPEC_API_VERSION, alias="apiVersion")
    name: K8sLabel = Field(description="Name of the ML system; it becomes Kubernetes names.")
    owner: str = Field(min_length=1, description="Team or person accountable (e-mail or handle).")
    description: str | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    data: Data
    features: Features
    training: Training
    serving: Serving
    drift: Drift | None = None
    ci: CI = Field(default_factory=CI)
    gitops: GitOps = Field(default_factory=GitOps)
    overrides: dict[K8sLabel, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-environment overrides, deep-merged into the spec (see README: precedence).",
    )

    # lookups used by validation and generators
    def source(self, name: str):
        return next((s for s in self.data.sources if s.name == name), None)

    def view(self, name: str) -> FeatureView | None:
        return next((v for v in self.features.views if v.name == name), None)

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.features.entities if e.name == name), None)

    def service(self, name: str) -> FeatureService | None:
        return next((s for s in self.features.services if s.name == name), None)

    def served_dtypes(self, service_name: str) -> dict[str, str]:
        """Each served feature's dtype: a field's declared one; an aggregation's count int64,
        last its column's (in the view's batch source), any other function float64."""
        out: dict[str, str] = {}
        for view_name, feature in self.served_features(service_name):
            view = self.view(view_name)
            field = next((f for f in view.fields if f.name == feature), None)
            if field is not None:
                out[feature] = field.dtype
                continue
            agg = next((a for a in view.aggregations if a.output_name == feature), None)
            if agg is None:
                continue
            if agg.function == "count":
                out[feature] = "int64"
            elif agg.function == "last":
                source = self.source(view.source)
                batch = self.source(getattr(source, "batch_source", None) or "") or source
                out[feature] = (getattr(batch, "columns", None) or {}).get(agg.column, "float64")
            else:
                out[feature] = "float64"
        return out

    def served_features(self, service_name: str) -> list[tuple[str, str]]:
        """(view, feature) pairs of a feature service, in order."""
        service = self.service(service_name)
        out: list[tuple[str, str]] = []
        for ref in service.features if service else []:
            view_name, _, feature = ref.partition(":")
            view = self.view(view_name)
            if view is None:
                continue
            out.extend((view_name, f) for f in ([feature] if feature else view.feature_names))
        return out

"""The register step's model directory: ``model.joblib`` plus MLServer's ``model-settings.json``
(scikit-learn runtime, the feature service's signature, what is served), deterministic, and the
pipeline passes the step the feature service's order.  The step runs in-process here; the real
MLServer loads the directory in ``tests/functional/serving_runtime``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlspec.compiler import context as target_context
from mlspec.generators import kubeflow as kf
from mlspec.generators import kubeflow_pipeline
from mlspec.generators.kubeflow_components import register_model
from mlspec.project import resolve_paths

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["tenure", "charges", "calls"]
SELECTION = json.dumps({"metric": "roc_auc", "goal": "maximize", "threshold": 0.5, "gate": "passed",
                        "best": {"index": 0, "params": {"C": 1.0}, "score": 0.9},
                        "candidates": [{"index": 0, "params": {"C": 1.0}, "score": 0.9}], "n_train": 45, "n_test": 15})


def _artifact(path: Path):
    return SimpleNamespace(path=str(path), metadata={})


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"tenure": rng.integers(0, 60, n), "charges": rng.normal(50, 10, n),
                          "calls": rng.integers(0, 5, n)})
    frame.loc[::7, "charges"] = np.nan
    return frame


def _trained(tmp_path: Path, estimator, y, columns=FEATURES) -> Path:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    model = Pipeline([("impute", SimpleImputer(strategy="median")), ("model", estimator)])
    model.fit(_frame()[columns], y)
    folder = tmp_path / "trained"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    return folder


def _register(tmp_path: Path, trained: Path, *, model_format: str = "sklearn", features=FEATURES, name="registered"):
    metrics = SimpleNamespace(log_metric=lambda key, value: None)
    registered = _artifact(tmp_path / name)
    out = json.loads(register_model(
        registry_root=str(tmp_path / "registry"), model_name="churn", pipeline_version="churn-0123456789",
        lineage=json.dumps({"spec": "churn"}), snapshots=json.dumps({"snapshots": {"labels": "ab"}}),
        selection=SELECTION, model=_artifact(trained), registered=registered, metrics=metrics,
        model_format=model_format, feature_service="churn_model", feature_columns=json.dumps(features)))
    return out, Path(out["model_uri"]), Path(registered.path)


def test_a_classifier_is_laid_out_for_mlserver_sklearn(tmp_path):
    y = (np.arange(60) % 3 == 0).astype("int64")
    trained = _trained(tmp_path, LogisticRegression(), y)
    out, model_dir, registered = _register(tmp_path, trained)

    assert sorted(p.name for p in model_dir.iterdir()) == ["model-settings.json", "model.joblib"]
    assert (model_dir / "model.joblib").read_bytes() == (trained / "model.joblib").read_bytes()
    text = (model_dir / "model-settings.json").read_text()
    settings = json.loads(text)
    assert settings == {
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": out["version"], "extra": {"predict_fn": "predict"}},
        "inputs": [{"name": "churn_model", "datatype": "FP64", "shape": [-1, 3],
                    "parameters": {"content_type": "np", "feature_names": FEATURES}}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        "platform": "sklearn",
        "versions": [f"scikit-learn/{sklearn.__version__}"],
    }
    assert "name" not in settings  # the platform names the model (MLSERVER_MODEL_NAME, Seldon's agent)
    assert text == json.dumps(settings, indent=2, sort_keys=True) + "\n"  # sorted keys, stable bytes
    # the pipeline's output artefact is the same directory as the registry's
    assert {p.name: p.read_bytes() for p in registered.iterdir()} == {p.name: p.read_bytes() for p in model_dir.iterdir()}
    # the relative uri resolves next to the settings file, as MLServer resolves it
    assert (model_dir / settings["parameters"]["uri"]).resolve() == (model_dir / "model.joblib").resolve()


def test_a_registry_uri_gets_the_same_model_directory(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    y = (np.arange(60) % 2).astype("int64")
    trained = _trained(tmp_path, LogisticRegression(), y)
    registered = _artifact(tmp_path / "registered")
    out = json.loads(register_model(
        registry_root="memory://layout-registry", model_name="churn", pipeline_version="churn-0123456789",
        lineage="{}", snapshots=json.dumps({"labels": "ab"}), selection=SELECTION, model=_artifact(trained),
        registered=registered, metrics=SimpleNamespace(log_metric=lambda key, value: None),
        model_format="sklearn", feature_service="churn_model", feature_columns=json.dumps(FEATURES)))
    fs = fsspec.filesystem("memory")
    remote = f"/layout-registry/churn/{out['version']}/model"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(remote, detail=False)) == ["model-settings.json", "model.joblib"]
    assert fs.cat(remote + "/model-settings.json") == (Path(registered.path) / "model-settings.json").read_bytes()
    assert json.loads(fs.cat(remote + "/model-settings.json"))["inputs"][0]["parameters"]["feature_names"] == FEATURES


def test_re_registering_writes_identical_files(tmp_path):
    y = (np.arange(60) % 2).astype("int64")
    trained = _trained(tmp_path, LogisticRegression(), y)
    first, model_dir, _ = _register(tmp_path, trained, name="first")
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    second, _, _ = _register(tmp_path, trained, name="second")
    assert second["version"] == first["version"]
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before


def test_string_labels_are_bytes_and_three_classes_have_three_probabilities(tmp_path):
    y = np.array(["basic", "premium", "standard"])[np.arange(60) % 3]
    trained = _trained(tmp_path, LogisticRegression(), y)
    _, model_dir, _ = _register(tmp_path, trained)
    outputs = json.loads((model_dir / "model-settings.json").read_text())["outputs"]
    assert outputs == [{"name": "predict", "datatype": "BYTES", "shape": [-1, 1]},
                       {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]


def test_a_regressor_serves_predict_only(tmp_path):
    trained = _trained(tmp_path, LinearRegression(), np.linspace(0.0, 1.0, 60))
    _, model_dir, _ = _register(tmp_path, trained)
    settings = json.loads((model_dir / "model-settings.json").read_text())
    assert settings["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, 1]}]
    assert settings["parameters"]["extra"] == {"predict_fn": "predict"}


def test_a_model_fitted_on_another_column_order_fails_the_step(tmp_path, capsys):
    y = (np.arange(60) % 2).astype("int64")
    trained = _trained(tmp_path, LogisticRegression(), y, columns=["charges", "tenure", "calls"])
    with pytest.raises(ValueError, match="not the feature service 'churn_model' order"):
        _register(tmp_path, trained)
    assert capsys.readouterr().out.startswith("MLSPEC-FAILURE: model was fitted on columns ['charges', 'tenure', 'calls']")
    assert not (tmp_path / "registry" / "churn").exists()  # nothing registered


def test_a_model_with_another_number_of_features_fails_the_step(tmp_path):
    y = (np.arange(60) % 2).astype("int64")
    folder = tmp_path / "trained"
    folder.mkdir()
    joblib.dump(LogisticRegression().fit(_frame()[FEATURES].fillna(0).to_numpy(), y),
                folder / "model.joblib")  # fitted on an array: no feature names to compare
    with pytest.raises(ValueError, match="model expects 3 features; feature service 'churn_model' has 2"):
        _register(tmp_path, folder, features=FEATURES[:2])


def test_a_container_trainers_directory_is_registered_as_written(tmp_path):
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    _, model_dir, _ = _register(tmp_path, folder, model_format="")
    assert sorted(p.name for p in model_dir.iterdir()) == ["weights.bin"]


def test_without_model_joblib_a_sklearn_registration_fails(tmp_path):
    folder = tmp_path / "trained"
    folder.mkdir()
    with pytest.raises(ValueError, match="no model.joblib"):
        _register(tmp_path, folder)


# --------------------------------------------------------------------------- the pipeline's wiring


def _context(spec_path: Path):
    result = resolve_paths([spec_path], ["dev"], ROOT / "environments")
    assert not result.errors, result.errors
    return target_context(result.resolved[0], kf.target)


def _register_task(ctx) -> tuple[dict, str]:
    ir = kubeflow_pipeline.compile_ir(ctx)[0]
    dags = [ir["root"]["dag"]] + [c["dag"] for c in ir["components"].values() if "dag" in c]
    [task] = [t for dag in dags for t in dag["tasks"].values() if t["taskInfo"]["name"] == "register model"]
    executor = ir["components"][task["componentRef"]["name"]]["executorLabel"]
    command = " ".join(ir["deploymentSpec"]["executors"][executor]["container"]["command"])
    constants = {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items() if "runtimeValue" in v}
    return constants, command


def test_the_pipeline_passes_the_feature_service_order_to_the_register_step():
    ctx = _context(ROOT / "examples" / "churn" / "mlops.yaml")
    constants, command = _register_task(ctx)
    training = ctx.spec.training
    assert constants["model_format"] == "sklearn"
    assert constants["feature_service"] == training.feature_service
    assert json.loads(constants["feature_columns"]) == [f for _, f in ctx.spec.served_features(training.feature_service)]
    assert kf.PINS["scikit-learn"] in command  # the step loads the model on the cluster too


def test_container_training_registers_without_the_mlserver_layout(tmp_path):
    spec_dir = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn" / "data", spec_dir / "data")
    data = yaml.safe_load((ROOT / "examples" / "churn" / "mlops.yaml").read_text())
    data["training"].pop("estimator")
    data["training"]["container"] = {"image": "ghcr.io/acme/trainer:1", "command": ["train"]}
    (spec_dir / "mlops.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    constants, command = _register_task(_context(spec_dir / "mlops.yaml"))
    assert constants["model_format"] == ""
    assert kf.PINS["scikit-learn"] not in command  # nothing to load: the step installs no scikit-learn


# --------------------------------------------------------------------------- the drift detector and the GitOps loop


def test_the_detector_is_registered_beside_the_model(tmp_path):
    folder = _trained(tmp_path, LogisticRegression(), np.arange(60) % 2)
    detector = tmp_path / "detector"
    detector.mkdir()
    (detector / "config.toml").write_text('name = "KSDrift"\n')
    (detector / "x_ref.npy").write_bytes(b"\x93NUMPY")
    metrics = SimpleNamespace(log_metric=lambda key, value: None)
    out = json.loads(register_model(
        registry_root=str(tmp_path / "registry"), model_name="churn", pipeline_version="churn-0123456789",
        lineage="{}", snapshots=json.dumps({"snapshots": {"labels": "ab"}}), selection=SELECTION,
        model=_artifact(folder), registered=_artifact(tmp_path / "registered"), metrics=metrics,
        model_format="sklearn", feature_service="churn_model", feature_columns=json.dumps(FEATURES),
        detector=_artifact(detector)))
    version = Path(out["uri"])
    assert sorted(p.name for p in (version / "drift-detector").iterdir()) == ["config.toml", "x_ref.npy"]
    assert (version / "model" / "model.joblib").is_file()


class _GitHub:
    """A fake GitHub REST API on 127.0.0.1 recording repository_dispatch calls."""

    def __init__(self):
        import http.server
        import threading

        calls = self.calls = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_a_registered_model_is_announced_to_the_gitops_repository(tmp_path):
    """The closed loop's first half: the register step sends repository_dispatch with what the
    generated new-model workflow validates (spec, env, uri, version, traffic, metric, goal,
    score, threshold, champion_score: ten keys, GitHub's limit), the champion's score read from
    the metrics.json beside the champion's model."""
    champion = tmp_path / "registry" / "churn" / "v3"
    (champion / "model").mkdir(parents=True)
    (champion / "metrics.json").write_text(json.dumps({"score": 0.81}))
    token = tmp_path / "token"
    token.write_text("s3cr3t\n")
    github = _GitHub()
    try:
        folder = _trained(tmp_path, LogisticRegression(), np.arange(60) % 2)
        announce = json.dumps({"repository": "acme/ml-gitops", "event_type": "mlspec-new-model", "api": github.url,
                               "token_file": str(token), "spec": "examples/churn/mlops.yaml", "env": "staging",
                               "traffic": 10})
        out = json.loads(register_model(
            registry_root=str(tmp_path / "registry"), model_name="churn", pipeline_version="churn-0123456789",
            lineage="{}", snapshots=json.dumps({"snapshots": {"labels": "ab"}}), selection=SELECTION,
            model=_artifact(folder), registered=_artifact(tmp_path / "registered"),
            metrics=SimpleNamespace(log_metric=lambda key, value: None), model_format="sklearn",
            feature_service="churn_model", feature_columns=json.dumps(FEATURES), announce=announce,
            champion_uri=str(champion / "model")))
    finally:
        github.close()
    [(path, headers, body)] = github.calls
    assert path == "/repos/acme/ml-gitops/dispatches"
    assert headers["authorization"] == "Bearer s3cr3t" and headers["x-github-api-version"] == "2022-11-28"
    assert body == {"event_type": "mlspec-new-model", "client_payload": {
        "spec": "examples/churn/mlops.yaml", "env": "staging", "uri": out["model_uri"], "version": out["version"],
        "traffic": 10, "metric": "roc_auc", "goal": "maximize", "score": 0.9, "threshold": 0.5,
        "champion_score": 0.81}}


def test_a_failed_announcement_fails_the_step(tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("t")
    folder = _trained(tmp_path, LogisticRegression(), np.arange(60) % 2)
    announce = json.dumps({"repository": "acme/ml-gitops", "event_type": "mlspec-new-model",
                           "api": "http://127.0.0.1:9", "token_file": str(token), "spec": "s", "env": "e",
                           "traffic": 10})
    with pytest.raises(ValueError, match="could not announce"):
        register_model(
            registry_root=str(tmp_path / "registry"), model_name="churn", pipeline_version="churn-0123456789",
            lineage="{}", snapshots=json.dumps({"snapshots": {"labels": "ab"}}), selection=SELECTION,
            model=_artifact(folder), registered=_artifact(tmp_path / "registered"),
            metrics=SimpleNamespace(log_metric=lambda key, value: None), model_format="sklearn",
            feature_service="churn_model", feature_columns=json.dumps(FEATURES), announce=announce)
    assert "MLSPEC-FAILURE" in capsys.readouterr().out


def test_announcing_is_wired_per_environment():
    """staging enables drift.new_models: its register step announces, with the token Secret
    mounted; the schedule passes the champion as a run parameter (not in the IR, so promoting a
    model keeps the PipelineVersion). dev does not announce."""
    def staging_context():
        result = resolve_paths([ROOT / "examples" / "churn" / "mlops.yaml"], ["staging"], ROOT / "environments")
        assert not result.errors, result.errors
        return target_context(result.resolved[0], kf.target)

    ctx = staging_context()
    constants, _ = _register_task(ctx)
    announce = json.loads(constants["announce"])
    assert announce == {"repository": "acme/ml-gitops", "event_type": "mlspec-new-model",
                        "api": "https://api.github.com", "token_file": f"{kf.SECRET_MOUNT}/github/token",
                        "spec": "examples/churn/mlops.yaml", "env": "staging", "traffic": 10}
    ir, platform = kubeflow_pipeline.compile_ir(ctx)
    [mount] = [m for e in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
               for m in e.get("secretAsVolume", [])]
    assert mount["secretName"] == "gitops-dispatch" and mount["mountPath"] == f"{kf.SECRET_MOUNT}/github"
    cron = kubeflow_pipeline.schedule_cronjob(ctx, ir["pipelineInfo"]["name"])
    env = {e["name"]: e["value"] for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["KFP_RUN_PARAMETERS"]) == {"champion_uri": ctx.spec.serving.champion.uri}
    assert "announce" not in _register_task(_context(ROOT / "examples" / "churn" / "mlops.yaml"))[0]

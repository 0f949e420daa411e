"""A small project for the drift tests: a spec serving four features of every kind a drift
method handles (int64 tenure, float64 charges, int64 support calls, bool premium), its data
file, two environments, and generated samples (fixed numpy seeds) -- the churn example's
feature columns plus a bool."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

#: Served features in the served order, with their spec dtypes.
SERVED = {"tenure_months": "int64", "monthly_charges": "float64", "support_calls": "int64", "premium": "bool"}
#: A monitored subset per method, each a dtype the method handles.
MONITORED = {
    "ks": ["tenure_months", "monthly_charges", "support_calls"],
    "chi2": ["support_calls", "premium"],
    "tabular": ["tenure_months", "monthly_charges", "support_calls", "premium"],
    "mmd": ["tenure_months", "monthly_charges"],
}


def sample(n: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """``n`` rows of the served features; ``shift``: the same features drifted (longer tenure,
    higher charges, more support calls, more premium customers)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64) + 1000 * seed,
        "tenure_months": rng.integers(0, 72, n) + (30 if shift else 0),
        "monthly_charges": rng.normal(70.0 + (15.0 if shift else 0.0), 20.0, n),
        "support_calls": rng.poisson(3.0 if shift else 1.5, n).astype(np.int64),
        "premium": rng.random(n) < (0.6 if shift else 0.3),
    })


def spec_text(method: str, *, features: list[str] | None = None, p_value: float = 0.05,
              correction: str = "bonferroni", drift: bool = True, sample_size: int = 1000) -> str:
    features = features or MONITORED[method]
    fields = "\n".join(f"        - {{name: {n}, dtype: {t}}}" for n, t in SERVED.items())
    block = textwrap.dedent(f"""\
        drift:
          method: {method}
          features: [{', '.join(features)}]
          p_value: {p_value}
          correction: {correction}
          batch_size: 200
          reference: {{sample_size: {sample_size}}}
          action: alert
          alert_webhook: {{secret: drift-webhook, key: url}}
        """) if drift else ""
    return textwrap.dedent("""\
        name: drifty
        owner: ml@acme.example
        data:
          sources:
            - name: customers
              type: file
              path: data/customers.parquet
              timestamp: event_timestamp
        features:
          entities:
            - {name: customer, join_key: customer_id}
          views:
            - name: profile
              source: customers
              entities: [customer]
              fields:
        """) + fields + "\n" + textwrap.dedent("""\
          services:
            - {name: svc, features: [profile]}
        training:
          label: {source: customers, column: churned, snapshot: true}
          feature_service: svc
          estimator: sklearn.linear_model.LogisticRegression
          metric: {name: accuracy, goal: maximize, threshold: 0.5}
        serving:
          runtime: kserve
          model_format: sklearn
          champion: {uri: gs://acme-models/drifty/v1/model}
        """) + block


ENVIRONMENT = """\
name: {name}
namespace: ml-{name}
registry: ghcr.io/acme
argocd:
  repo_url: https://github.com/acme/ml-gitops.git
storage:
  artifacts: s3://acme-ml-{name}/pipelines
"""


def make_project(root: Path, method: str, **options) -> Path:
    """Write the project under ``root``; returns the spec file."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "environments").mkdir(exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    frame = sample(300, seed=99)
    frame["churned"] = (frame["support_calls"] > 2).astype(np.int64)
    frame["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(frame.index, unit="h")
    frame.to_parquet(root / "data" / "customers.parquet", index=False)
    for name in ("dev", "prod"):
        (root / "environments" / f"{name}.yaml").write_text(ENVIRONMENT.format(name=name))
    spec = root / "mlops.yaml"
    spec.write_text(spec_text(method, **options))
    return spec

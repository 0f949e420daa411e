"""A real git repository with one commit per kind of change, for `mlspec diff --base`."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffrepo import CHURN, FRAUD, edit, git, new_repo


def _commit(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", tag)
    git(repo, "tag", tag)


@pytest.fixture(scope="session")
def history(tmp_path_factory) -> Path:
    """base → traffic → model → qa (an environment added) → no-merchant-view → grid, one commit each."""
    repo = new_repo(tmp_path_factory.mktemp("history") / "repo")
    edit(repo / CHURN, "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 80, challenger: 20}")
    _commit(repo, "traffic")
    edit(repo / CHURN, "champion: {uri: gs://acme-models/churn/v3/model}", "champion: {uri: gs://acme-models/churn/v5/model}")
    _commit(repo, "model")
    staging = (repo / "environments/staging.yaml").read_text()
    qa = staging.replace("name: staging", "name: qa", 1).replace("namespace: ml-staging", "namespace: ml-qa", 1)
    (repo / "environments/qa.yaml").write_text(qa)
    _commit(repo, "qa")
    fraud = repo / FRAUD
    text = fraud.read_text()
    start = text.index("    - name: merchant_risk\n")
    end = text.index("  services:\n")
    fraud.write_text(text[:start] + text[end:])
    edit(fraud, 'features: [card_activity, "merchant_risk:risk_score"]', "features: [card_activity]")
    edit(fraud, "features: [spend_1h, txn_count_1h, risk_score]", "features: [spend_1h, txn_count_1h]")
    _commit(repo, "no-merchant-view")
    edit(repo / CHURN, "n_estimators: [50, 100]", "n_estimators: [50, 100, 200]")
    _commit(repo, "grid")
    return repo


@pytest.fixture
def at(history: Path, tmp_path: Path):
    """``at(tag)``: a work tree of ``history`` at that tag (its own folder; the repository is shared)."""
    def make(tag: str) -> Path:
        where = tmp_path / tag
        git(history, "worktree", "add", "-q", "--detach", str(where), tag)
        return where
    return make

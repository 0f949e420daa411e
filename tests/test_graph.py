"""``mlspec graph`` and :mod:`mlspec.graph`: the structure drawn for each example, escaping,
``changed``, and the CLI.

Both drawings are checked with tools nobody here wrote:

* Mermaid with the real Mermaid (npm ``mermaid``, in Node.js with ``jsdom`` as its DOM): its
  flowchart parser must accept the text, and the vertices, edges, labels and classes it
  reads back must be exactly the graph's (labels decoded as Mermaid decodes entities, then
  as the browser decodes HTML);
* DOT with ``pydot`` (a Python DOT parser) and with real Graphviz compiled to WebAssembly
  (npm ``@hpcc-js/wasm-graphviz``): the SVG it lays out must show every label line exactly.

The npm packages are installed once, at pinned versions, into a cache folder outside the
checkout (:func:`graph_tools`); Node.js and npm come with the machine.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pydot
import pytest
from click.testing import CliRunner

from mlspec import graph as g
from mlspec.cli import main
from mlspec.project import resolve

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"churn": REPO / "examples/churn/mlops.yaml", "fraud": REPO / "examples/fraud/mlops.yaml"}
ENVIRONMENTS = ("dev", "staging", "prod")
ID = re.compile(r"^[A-Za-z0-9_]+$")

# --------------------------------------------------------------------------- upstream tools

NPM_PACKAGES = {"mermaid": "11.17.2", "jsdom": "29.1.1", "@hpcc-js/wasm-graphviz": "1.29.2"}

ORACLE_JS = r"""
import fs from "fs";
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
const { Graphviz } = await import("@hpcc-js/wasm-graphviz");
mermaid.initialize({ startOnLoad: false });
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const out = { mermaid: [], dot: [] };
for (const text of input.mermaid) {
  try {
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const db = diagram.db;
    out.mermaid.push({
      ok: true, type: diagram.type,
      vertices: [...db.getVertices().values()].map(v => ({ id: v.id, text: v.text, type: v.type,
                                                            classes: v.classes, labelType: v.labelType })),
      edges: db.getEdges().map(e => ({ start: e.start, end: e.end, text: e.text, labelType: e.labelType })),
      classes: Object.fromEntries([...db.getClasses().entries()].map(([k, c]) => [k, c.styles])),
    });
  } catch (e) {
    out.mermaid.push({ ok: false, error: String(e && e.message || e) });
  }
}
const graphviz = await Graphviz.load();
for (const text of input.dot) {
  try {
    out.dot.push({ ok: true, svg: graphviz.layout(text, "svg", "dot") });
  } catch (e) {
    out.dot.push({ ok: false, error: String(e && e.message || e) });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def _tools_dir() -> Path:
    digest = hashlib.sha256(json.dumps([NPM_PACKAGES, ORACLE_JS], sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("MLSPEC_GRAPH_TOOLS") or cache / "mlspec-tests" / f"graph-tools-{digest}")


@pytest.fixture(scope="session")
def graph_tools() -> Path:
    """A folder with the pinned npm packages and the oracle script (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed to check Mermaid and DOT with the real tools"
    folder = _tools_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # one installer when tests run in parallel
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".installed").is_file():
            (folder / "package.json").write_text(json.dumps(
                {"name": "mlspec-graph-tools", "private": True, "type": "module", "dependencies": NPM_PACKAGES}))
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"npm install failed:\n{proc.stdout}\n{proc.stderr}"
            (folder / "oracle.mjs").write_text(ORACLE_JS)
            (folder / ".installed").write_text("ok\n")
    return folder


@pytest.fixture(scope="session")
def oracle(graph_tools):
    """``oracle(mermaid=[...], dot=[...])``: what real Mermaid and Graphviz make of the texts."""

    def run(mermaid: list[str] = (), dot: list[str] = ()) -> dict:
        proc = subprocess.run(["node", str(graph_tools / "oracle.mjs")], input=json.dumps(
            {"mermaid": list(mermaid), "dot": list(dot)}), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run


def mermaid_lines(text: str) -> list[str]:
    """A label as Mermaid shows it: its entity markers turned back into HTML entities
    (mermaid's decodeEntities: "ﬂ°°" → "&#", "ﬂ°" → "&", "¶ß" → ";"), decoded as HTML,
    split at the <br> line breaks."""
    decoded = text.replace("ﬂ°°", "&#").replace("ﬂ°", "&").replace("¶ß", ";")
    return [html.unescape(part) for part in re.split(r"<br\s*/?>", decoded)]


def svg_labels(svg: str) -> tuple[dict[str, list[str]], dict[tuple[str, str], list[str]], dict[str, str]]:
    """From Graphviz's SVG: {node id: text lines}, {(src, dst): text lines}, {node id: class}."""
    ns = {"s": "http://www.w3.org/2000/svg"}
    root = ET.fromstring(svg.encode("utf-8"))
    nodes, edges, classes = {}, {}, {}
    for group in root.iter("{http://www.w3.org/2000/svg}g"):
        kind = (group.get("class") or "").split()
        title = group.find("s:title", ns)
        texts = [t.text or "" for t in group.findall("s:text", ns)]
        if "node" in kind:
            nodes[title.text] = texts
            classes[title.text] = group.get("class")
        elif "edge" in kind:
            src, dst = title.text.split("->")
            edges[(src, dst)] = texts
    return nodes, edges, classes


def dot_unquote(value: str) -> str:
    """A DOT quoted label as Graphviz reads it: \\" and \\\\ and \\n, then HTML entities."""
    assert value.startswith('"') and value.endswith('"'), value
    body = re.sub(r'\\(["\\n])', lambda m: {'"': '"', "\\": "\\", "n": "\n"}[m.group(1)], value[1:-1])
    return html.unescape(body)


def check_mermaid(result: dict, graph: g.Graph, highlight: set[str] = frozenset()) -> None:
    """Real Mermaid read exactly ``graph`` back."""
    assert result["ok"], result.get("error")
    assert result["type"] == "flowchart-v2"
    vertices = result["vertices"]
    assert [v["id"] for v in vertices] == [n.id for n in graph.nodes]
    for item in (*vertices, *result["edges"]):
        # what Mermaid's renderer would still interpret in the text it parsed: HTML (only our
        # <br> may be there), KaTeX ($$...$$), a literal \n (a line break for createText)
        raw = item["text"]
        assert "$$" not in raw and "\\" not in raw and "<" not in re.sub(r"<br\s*/?>", "", raw), item
    for vertex, node in zip(vertices, graph.nodes):
        assert vertex["labelType"] == "string", vertex  # never a markdown string
        assert mermaid_lines(vertex["text"]) == node.label.split("\n"), vertex
        assert ("changed" in vertex["classes"]) == (node.id in highlight), vertex
    assert [(e["start"], e["end"]) for e in result["edges"]] == [(s, d) for s, d, _ in graph.edges]
    for edge, (_, _, label) in zip(result["edges"], graph.edges):
        assert mermaid_lines(edge["text"]) == label.split("\n"), edge
    if highlight:
        assert result["classes"] == {"changed": ["fill:#fff3b0", "stroke:#d4a000", "stroke-width:2px"]}


def check_dot(text: str, result: dict, graph: g.Graph, highlight: set[str] = frozenset()) -> None:
    """pydot parses exactly ``graph``; Graphviz lays it out showing every label line."""
    parsed = pydot.graph_from_dot_data(text)
    assert parsed is not None and len(parsed) == 1
    dg = parsed[0]
    nodes = [n for n in dg.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    assert [n.get_name() for n in nodes] == [n.id for n in graph.nodes]
    for parsed_node, node in zip(nodes, graph.nodes):
        assert dot_unquote(parsed_node.get("label")) == node.label
    assert [(e.get_source(), e.get_destination()) for e in dg.get_edges()] == [(s, d) for s, d, _ in graph.edges]
    for parsed_edge, (_, _, label) in zip(dg.get_edges(), graph.edges):
        assert (dot_unquote(parsed_edge.get("label")) if label else parsed_edge.get("label")) == (label or None)
    assert result["ok"], result.get("error")
    nodes_svg, edges_svg, classes = svg_labels(result["svg"])
    assert sorted(nodes_svg) == sorted(n.id for n in graph.nodes)  # (Graphviz writes them in its own order)
    for node in graph.nodes:
        assert nodes_svg[node.id] == node.label.split("\n"), node.id
        assert classes[node.id] == ("node changed" if node.id in highlight else "node")
    assert set(edges_svg) == {(s, d) for s, d, _ in graph.edges}
    for src, dst, label in graph.edges:
        assert edges_svg[(src, dst)] == (label.split("\n") if label else [])


def check_well_formed(graph: g.Graph) -> None:
    ids = [n.id for n in graph.nodes]
    assert len(ids) == len(set(ids))
    assert all(ID.match(i) for i in ids)
    assert all(s in ids and d in ids for s, d, _ in graph.edges)
    assert len(graph.edges) == len(set(graph.edges))


# --------------------------------------------------------------------------- resolving


def resolved(spec: Path, env: str | None = None, env_dir: Path | None = None):
    result = resolve(spec, [env] if env else [], env_dir)
    assert not result.errors, [str(e) for e in result.errors]
    return result.resolved[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the examples and environments, at a repository root."""
    work = tmp_path / "repo"
    for folder in ("examples", "environments"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / ".git").mkdir()
    return work


def edited(project: Path, old: str, new: str, spec: str = "churn") -> Path:
    path = project / "examples" / spec / "mlops.yaml"
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return path


# --------------------------------------------------------------------------- structure

CHURN_NODES = [
    ("source_customers", "source"), ("checks_customers", "checks"), ("source_transactions", "source"),
    ("checks_transactions", "checks"), ("source_labels", "source"), ("checks_labels", "checks"),
    ("view_customer_profile", "view"), ("view_customer_spend", "view"), ("service_churn_model", "service"),
    ("training", "training"), ("model", "model"), ("split", "split"), ("champion", "champion"),
    ("challenger", "challenger"), ("drift", "drift"), ("action_retrain", "action"),
]
CHURN_EDGES = [
    ("source_customers", "checks_customers", ""),
    ("source_transactions", "checks_transactions", ""),
    ("source_labels", "checks_labels", ""),
    ("checks_customers", "view_customer_profile", ""),
    ("checks_transactions", "view_customer_spend", ""),
    ("view_customer_profile", "service_churn_model", ""),
    ("view_customer_spend", "service_churn_model", ""),
    ("service_churn_model", "training", "features"),
    ("checks_labels", "training", "label: churned"),
    ("training", "model", "passes gate"),
    ("model", "split", "serves"),
    ("split", "champion", "90%"),
    ("split", "challenger", "10%"),
    ("split", "drift", "served features"),
    ("training", "drift", "reference"),
    ("drift", "action_retrain", "on drift"),
    ("action_retrain", "training", "retrain"),
]
FRAUD_NODES = [
    ("source_card_events", "source"), ("source_card_events_log", "source"), ("checks_card_events_log", "checks"),
    ("source_merchants", "source"), ("checks_merchants", "checks"), ("source_chargebacks", "source"),
    ("view_card_activity", "view"), ("view_merchant_risk", "view"), ("service_fraud_scoring", "service"),
    ("training", "training"), ("model", "model"), ("split", "split"), ("champion", "champion"),
    ("challenger", "challenger"), ("drift", "drift"), ("action_alert", "action"),
]
FRAUD_EDGES = [
    ("source_card_events_log", "checks_card_events_log", ""),
    ("source_merchants", "checks_merchants", ""),
    ("checks_card_events_log", "source_card_events", "backfill"),
    ("source_card_events", "view_card_activity", ""),
    ("checks_merchants", "view_merchant_risk", ""),
    ("view_card_activity", "service_fraud_scoring", ""),
    ("view_merchant_risk", "service_fraud_scoring", "risk_score"),
    ("service_fraud_scoring", "training", "features"),
    ("source_chargebacks", "training", "label: is_fraud"),
    ("training", "model", "passes gate"),
    ("model", "split", "serves"),
    ("split", "champion", "100%"),
    ("split", "challenger", "mirror 100%"),
    ("split", "drift", "served features"),
    ("training", "drift", "reference"),
    ("drift", "action_alert", "on drift"),
]


def labels(graph: g.Graph) -> dict[str, list[str]]:
    return {n.id: n.label.split("\n") for n in graph.nodes}


def test_churn_as_written() -> None:
    graph = g.build(resolved(EXAMPLES["churn"]))
    assert [(n.id, n.kind) for n in graph.nodes] == CHURN_NODES
    assert list(graph.edges) == CHURN_EDGES
    got = labels(graph)
    assert got["source_customers"] == ["customers", "file: data/customers.parquet"]
    assert got["checks_customers"] == [
        "checks: customers", "rows >= 100", "not null: customer_id, tenure_months, monthly_charges",
        "0 <= tenure_months <= 240", "plan: one of basic, standard, premium", "unique: customer_id, event_timestamp"]
    assert got["view_customer_spend"] == [
        "customer_spend", "entities: customer (customer_id)", "ttl 30d", "spend_30d = sum(amount, 30d)",
        "purchases_30d = count(amount, 30d)", "avg_basket_7d = mean(amount, 7d)"]
    assert got["service_churn_model"] == ["feature service: churn_model", "2 references", "served by Feast"]
    assert got["training"] == ["training", "GradientBoostingClassifier", "grid: 8 candidates, 4 in parallel",
                               "gate: roc_auc >= 0.7", "split: random, test 0.25", "schedule: 0 3 * * 1 (Etc/UTC)"]
    assert got["model"] == ["model", "format: sklearn"]  # no environment: no registry
    assert got["split"] == ["champion/challenger", "kserve, ab", "90% / 10%", "replicas 1-4"]
    assert got["champion"] == ["champion", "gs://acme-models/churn/v3/model"]
    assert got["challenger"] == ["challenger", "gs://acme-models/churn/v4/model"]
    assert got["drift"] == ["drift", "ks p < 0.01", "features: tenure_months, monthly_charges, support_calls, spend_30d",
                            "batches of 500 served rows", "reference: the training frame (500 rows)"]
    assert got["action_retrain"] == ["retrain", "cooldown 24h"]


def test_churn_in_environments() -> None:
    dev = g.build(resolved(EXAMPLES["churn"], "dev"))
    prod = g.build(resolved(EXAMPLES["churn"], "prod"))
    for graph in (dev, prod):
        assert [(n.id, n.kind) for n in graph.nodes] == CHURN_NODES
    assert ("split", "champion", "50%") in dev.edges and ("split", "challenger", "50%") in dev.edges  # overrides.dev
    assert labels(dev)["split"] == ["champion/challenger", "kserve (Knative), ab", "50% / 50%", "replicas 1-2",
                                    "namespace: ml-dev"]
    assert labels(prod)["split"] == ["champion/challenger", "kserve (Standard), ab", "90% / 10%", "replicas 3-10",
                                     "namespace: ml-prod", "policy: challenger <= 50%"]
    assert labels(prod)["model"] == ["model", "format: sklearn", "registry: s3://acme-ml-prod/models/churn"]
    assert labels(prod)["service_churn_model"][2] == "served by Feast (redis)"  # env.feast.online_store
    assert labels(dev)["service_churn_model"][2] == "served by Feast (sqlite)"  # the feast target's default


def test_fraud_as_written() -> None:
    graph = g.build(resolved(EXAMPLES["fraud"]))
    assert [(n.id, n.kind) for n in graph.nodes] == FRAUD_NODES
    assert list(graph.edges) == FRAUD_EDGES
    got = labels(graph)
    assert got["source_card_events"] == ["card_events", "kafka topic: card-transactions"]
    assert got["training"][2] == "random search: 6 trials, 3 in parallel"
    assert got["training"][3] == "gate: f1 >= 0.5"
    assert got["split"] == ["champion/challenger", "seldon, shadow", "mirror 100%", "replicas 2-6"]
    assert got["drift"][1] == "tabular p < 0.05"
    assert got["action_alert"] == ["alert", "cooldown 12h", "webhook: secret fraud-oncall-webhook"]


def test_mermaid_snapshot() -> None:
    """The exact Mermaid text (the diff report embeds it): a change here is a change to every report."""
    text = g.mermaid(g.build(resolved(EXAMPLES["churn"])), highlight={"split", "nonexistent"})
    assert text == """\
flowchart LR
  source_customers[("customers<br/>file: data/customers.parquet")]
  checks_customers[/"checks: customers<br/>rows #gt;= 100<br/>not null: customer_id, tenure_months, monthly_charges\
<br/>0 #lt;= tenure_months #lt;= 240<br/>plan: one of basic, standard, premium<br/>unique: customer_id, event_timestamp"/]
  source_transactions[("transactions<br/>file: data/transactions.parquet")]
  checks_transactions[/"checks: transactions<br/>amount #gt;= 0"/]
  source_labels[("labels<br/>file: data/labels.csv")]
  checks_labels[/"checks: labels<br/>churned: one of 0, 1"/]
  view_customer_profile["customer_profile<br/>entities: customer (customer_id)<br/>ttl 30d<br/>fields: tenure_months, \
monthly_charges, support_calls"]
  view_customer_spend["customer_spend<br/>entities: customer (customer_id)<br/>ttl 30d<br/>spend_30d = sum(amount, 30d)\
<br/>purchases_30d = count(amount, 30d)<br/>avg_basket_7d = mean(amount, 7d)"]
  service_churn_model[["feature service: churn_model<br/>2 references<br/>served by Feast"]]
  training["training<br/>GradientBoostingClassifier<br/>grid: 8 candidates, 4 in parallel<br/>gate: roc_auc #gt;= 0.7\
<br/>split: random, test 0.25<br/>schedule: 0 3 * * 1 (Etc/UTC)"]
  model(["model<br/>format: sklearn"])
  split{{"champion/challenger<br/>kserve, ab<br/>90% / 10%<br/>replicas 1-4"}}
  champion["champion<br/>gs#58;//acme-models/churn/v3/model"]
  challenger["challenger<br/>gs#58;//acme-models/churn/v4/model"]
  drift["drift<br/>ks p #lt; 0.01<br/>features: tenure_months, monthly_charges, support_calls, spend_30d<br/>batches of 500 \
served rows<br/>reference: the training frame (500 rows)"]
  action_retrain(["retrain<br/>cooldown 24h"])
  source_customers --> checks_customers
  source_transactions --> checks_transactions
  source_labels --> checks_labels
  checks_customers --> view_customer_profile
  checks_transactions --> view_customer_spend
  view_customer_profile --> service_churn_model
  view_customer_spend --> service_churn_model
  service_churn_model -->|"features"| training
  checks_labels -->|"label: churned"| training
  training -->|"passes gate"| model
  model -->|"serves"| split
  split -->|"90%"| champion
  split -->|"10%"| challenger
  split -->|"served features"| drift
  training -->|"reference"| drift
  drift -->|"on drift"| action_retrain
  action_retrain -->|"retrain"| training
  classDef changed fill:#fff3b0,stroke:#d4a000,stroke-width:2px
  class split changed
"""
    assert "classDef" not in g.mermaid(g.build(resolved(EXAMPLES["churn"]))), "no class without highlights"


def test_every_example_with_the_real_tools(oracle) -> None:
    """Each example, as written and in each environment: real Mermaid and Graphviz read it back exactly."""
    cases = []
    for name, spec in EXAMPLES.items():
        for env in (None, *ENVIRONMENTS):
            graph = g.build(resolved(spec, env))
            check_well_formed(graph)
            highlight = {graph.nodes[1].id, "split"}
            cases.append((f"{name}/{env}", graph, highlight))
    result = oracle(mermaid=[g.mermaid(c[1], c[2]) for c in cases], dot=[g.dot(c[1], c[2]) for c in cases])
    for (case, graph, highlight), mm, dt in zip(cases, result["mermaid"], result["dot"]):
        check_mermaid(mm, graph, highlight)
        check_dot(g.dot(graph, highlight), dt, graph, highlight)


def test_deterministic() -> None:
    one, two = resolved(EXAMPLES["fraud"], "prod"), resolved(EXAMPLES["fraud"], "prod")
    assert one is not two and g.build(one) == g.build(two)
    assert g.mermaid(g.build(one), ["drift", "split"]) == g.mermaid(g.build(two), ["split", "drift"])
    assert g.dot(g.build(one), {"drift"}) == g.dot(g.build(two), ["drift"])


def variant(**edits) -> g.Graph:
    """The churn example's graph (in dev) with parts of its document replaced."""
    doc = copy.deepcopy(resolved(EXAMPLES["churn"], "dev").document)
    for path, value in edits.items():
        *parents, leaf = path.split("__")
        node = doc["spec"]
        for part in parents:
            node = node[part]
        node[leaf] = value
    return g.build(SimpleNamespace(document=doc))


def test_variants(oracle) -> None:
    """What the examples do not show: no drift, no challenger, rollback, psi, a minimised
    metric, container training, a time split, no schedule, a push source, an offline view,
    long lists, no feature store."""
    graphs = {}
    graphs["no drift"] = variant(drift=None)
    assert not [n for n in graphs["no drift"].nodes if n.kind in ("drift", "action")]
    assert all("drift" not in (s, d) and not s.startswith("action") for s, d, _ in graphs["no drift"].edges)

    graphs["no challenger"] = variant(serving__challenger=None, serving__traffic={"champion": 100, "challenger": 0})
    assert "challenger" not in {n.id for n in graphs["no challenger"].nodes}
    assert ("split", "champion", "100%") in graphs["no challenger"].edges
    assert labels(graphs["no challenger"])["split"][2] == "champion 100%"

    graphs["rollback"] = variant(drift__action="rollback", drift__method="chi2", drift__p_value=0.3)
    assert ("action_rollback", "split", "100% champion") in graphs["rollback"].edges
    assert labels(graphs["rollback"])["drift"][1] == "chi2 p < 0.3"

    graphs["training"] = variant(
        training__metric={"name": "rmse", "goal": "minimize", "threshold": 3.5}, training__estimator=None,
        training__container={"image": "ghcr.io/acme/train:1", "command": ["python"], "args": []},
        training__split={"strategy": "time", "test_size": 0.2, "cutoff": "2024-01-01T00:00:00", "gap": None,
                         "seed": 42, "stratify": False},
        training__schedule=None, training__parallelism=1, training__search={"strategy": "grid", "parameters": {}})
    assert labels(graphs["training"])["training"] == [
        "training", "container: ghcr.io/acme/train:1", "grid: 1 candidate", "gate: rmse <= 3.5",
        "split: time, test from 2024-01-01T00:00:00", "schedule: manual"]

    push = {"name": "clicks", "type": "push", "batch_source": "transactions", "columns": {}, "checks": []}
    aggs = [{"column": "amount", "function": "sum", "window": f"{d}d", "name": f"s{d}"} for d in range(1, 9)]
    doc = copy.deepcopy(resolved(EXAMPLES["churn"], "dev").document)
    doc["spec"]["data"]["sources"].append(push)
    view = doc["spec"]["features"]["views"][1]
    view.update(online=False, ttl="0s", aggregations=aggs)
    doc["spec"]["features"]["feature_store"] = False
    graphs["features"] = g.build(SimpleNamespace(document=doc))
    assert ("source_clicks", "source_transactions", "logged to") in graphs["features"].edges
    got = labels(graphs["features"])
    assert got["view_customer_spend"] == ["customer_spend", "entities: customer (customer_id)", "offline only",
                                          "s1 = sum(amount, 1d)", "s2 = sum(amount, 2d)", "s3 = sum(amount, 3d)",
                                          "s4 = sum(amount, 4d)", "s5 = sum(amount, 5d)", "+3 more"]
    assert got["service_churn_model"][2] == "computed in the pipeline"
    assert got["source_clicks"] == ["clicks", "push"]

    for graph in graphs.values():
        check_well_formed(graph)
    result = oracle(mermaid=[g.mermaid(x) for x in graphs.values()], dot=[g.dot(x) for x in graphs.values()])
    for graph, mm, dt in zip(graphs.values(), result["mermaid"], result["dot"]):
        check_mermaid(mm, graph)
        check_dot(g.dot(graph), dt, graph)


# --------------------------------------------------------------------------- escaping

HOSTILE = [
    'say "hi"', "a]b[c", "x\"]; end; y[\"", "<b>bold</b><script>alert(1)</script>", "a|b||c", "#quot; #35; &amp; &",
    "%%{init: {\"theme\": \"dark\"}}%%", "style:#quot;x; classDef c fill:#f00;", "`markdown` **b**", "$$x^2$$",
    "back\\slash \\N \\G \\n \\l", "tab\there", "ünïcödé ≥ 日本 😀", "{curly} (round) [square]", "end", "--> -.-> ==>",
    "100% ; ;; :::cls", "a\nb",
]


def test_escaping_round_trips_arbitrary_labels(oracle) -> None:
    """Hand-made labels with every hazard: both drawings show them exactly (DOT: control
    characters other than the line break become spaces)."""
    printable = "".join(chr(c) for c in range(33, 127))
    texts = [*HOSTILE, printable, "multi\nline\n" + printable]
    nodes = tuple(g.Node(f"n{i}", "view", text) for i, text in enumerate(texts))
    edges = tuple((f"n{i}", f"n{i + 1}", text) for i, text in enumerate(texts[:-1]))
    graph = g.Graph(nodes, edges)
    mermaid_text = g.mermaid(graph, {"n0", "n3"})
    assert mermaid_text.startswith("flowchart LR\n") and "```" not in mermaid_text
    assert mermaid_text.isascii()
    body = [line for line in mermaid_text.splitlines()[1:] if not line.lstrip().startswith(("classDef", "class "))]
    assert len(body) == len(nodes) + len(edges)  # one statement a line: no label broke out of its quotes
    dot_graph = g.Graph(tuple(g.Node(n.id, n.kind, n.label.replace("\t", " ")) for n in nodes),
                        tuple((s, d, label.replace("\t", " ")) for s, d, label in edges))
    result = oracle(mermaid=[mermaid_text], dot=[g.dot(graph, {"n0", "n3"})])
    check_mermaid(result["mermaid"][0], graph, {"n0", "n3"})
    check_dot(g.dot(graph, {"n0", "n3"}), result["dot"][0], dot_graph, {"n0", "n3"})


def test_unsafe_ids_are_refused() -> None:
    for bad in ("a-b", "a b", 'a"', "", "ü"):
        graph = g.Graph((g.Node(bad, "view", "x"),), ())
        with pytest.raises(ValueError, match="is not"):
            g.mermaid(graph)
        with pytest.raises(ValueError, match="is not"):
            g.dot(graph)


def hostile_document() -> dict:
    """The churn example's resolved document with hostile names and values everywhere
    the graph shows or derives ids from (names the spec models would refuse included:
    build() must not trust them)."""
    doc = copy.deepcopy(resolved(EXAMPLES["churn"], "dev").document)
    spec = doc["spec"]
    sources = spec["data"]["sources"]
    names = ['cust"]; end; x["', "tx-1", "tx_1"]
    for src, name in zip(sources, names):
        src["name"] = name
    sources.append({**copy.deepcopy(sources[2]), "name": "tx 1", "checks": []})
    sources[0]["path"] = 'data/<b>"x"</b>|[y]{z}#quot;&amp;\\N%%{init: {"theme":"dark"}}%%.parquet'
    sources[0]["checks"].append({"type": "allowed_values", "column": "plan|<i>",
                                 "values": ['a"b', "<br/>", "`md`", "$$x$$", "style:#quot;x;", "日本", "😀"]})
    views = spec["features"]["views"]
    views[0]["source"], views[1]["source"] = names[0], names[1]
    views[0]["name"], views[1]["name"] = "ü", "end"
    views.append({**copy.deepcopy(views[0]), "name": "lifestyle", "fields": [{"name": 'x:"y";'}]})  # see check_mermaid
    spec["features"]["services"][0]["features"] = ["ü", "end:spend_30d"]
    spec["training"]["label"]["source"] = "tx_1"
    spec["drift"]["reference"]["source"] = names[0]
    spec["serving"]["champion"]["uri"] = 'gs://b/"><script>alert(1)</script>&#x27;'
    spec["serving"]["challenger"]["version"] = "v\n2 \\N"
    return doc


def test_hostile_names_and_values(oracle) -> None:
    graph = g.build(SimpleNamespace(document=hostile_document()))
    check_well_formed(graph)
    ids = [n.id for n in graph.nodes]
    assert ids == [n.id for n in g.build(SimpleNamespace(document=hostile_document())).nodes]  # stable
    sources = [n.id for n in graph.nodes if n.kind == "source"]
    assert len(sources) == 4 and sources[2] == "source_tx_1"  # an id-safe name is kept as it is
    assert sources[0].startswith("source_cust_end_x_") and sources[1].startswith("source_tx_1_")
    assert sources[3].startswith("source_tx_1_") and sources[1] != sources[3]  # "tx-1", "tx 1": distinct
    views = [n.id for n in graph.nodes if n.kind == "view"]
    assert views[0].startswith("view_") and views[0] != "view_" and views[1] == "view_end"
    edges = {(s, d): label for s, d, label in graph.edges}
    assert edges[(views[1], "service_churn_model")] == "spend_30d"
    assert (sources[0].replace("source_", "checks_"), views[0]) in edges  # the view still reads its source
    labels_ = labels(graph)
    path = hostile_document()["spec"]["data"]["sources"][0]["path"]
    assert labels_[sources[0]][1] == f"file: {path[:57]}..."  # long values are clipped
    assert labels_["champion"][1] == 'gs://b/"><script>alert(1)</script>&#x27;'
    assert labels_["challenger"][2] == "version v 2 \\N"  # a value's line breaks are spaces
    result = oracle(mermaid=[g.mermaid(graph, ids[:3])], dot=[g.dot(graph, ids[:3])])
    check_mermaid(result["mermaid"][0], graph, set(ids[:3]))
    check_dot(g.dot(graph, ids[:3]), result["dot"][0], graph, set(ids[:3]))


# --------------------------------------------------------------------------- changed()


def test_changed_traffic_edit_only_the_split(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec)
    old_prod = resolved(spec, "prod")
    edited(project, "traffic: {champion: 90, challenger: 10}", "traffic: {champion: 80, challenger: 20}")
    assert g.changed(old, resolved(spec)) == {"split"}
    assert g.changed(old_prod, resolved(spec, "prod")) == {"split"}


def test_changed_grid_edit_only_training(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec, "dev")
    edited(project, "n_estimators: [50, 100]", "n_estimators: [50, 100, 200]")
    new = resolved(spec, "dev")
    assert g.changed(old, new) == {"training"}
    assert "grid: 12 candidates, 4 in parallel" in labels(g.build(new))["training"]


def test_changed_drift_edit_only_drift(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec)
    edited(project, "p_value: 0.01", "p_value: 0.02")
    assert g.changed(old, resolved(spec)) == {"drift"}


def test_changed_drift_action_is_a_new_action_node(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec)
    edited(project, "action: retrain", "action: alert")
    new = resolved(spec)
    assert g.changed(old, new) == {"action_alert"}
    assert ("action_retrain", "training", "retrain") not in g.build(new).edges


def test_changed_added_feature_view(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec)
    edited(project, "  services:\n", (
        "    - name: customer_peak\n"
        "      source: transactions\n"
        "      entities: [customer]\n"
        "      ttl: 30d\n"
        "      aggregations:\n"
        "        - {column: amount, function: max, window: 30d, name: max_amount_30d}\n"
        "  services:\n"))
    edited(project, "features: [customer_profile, customer_spend]", "features: [customer_profile, customer_spend, customer_peak]")
    new = resolved(spec)
    assert g.changed(old, new) == {"view_customer_peak", "service_churn_model"}
    assert ("checks_transactions", "view_customer_peak", "") in g.build(new).edges


def test_changed_model_uri_and_environment(project: Path) -> None:
    spec = project / "examples/churn/mlops.yaml"
    old = resolved(spec, "staging")
    edited(project, "challenger: {uri: gs://acme-models/churn/v4/model}", "challenger: {uri: gs://acme-models/churn/v5/model}")
    env_file = project / "environments/staging.yaml"
    env_file.write_text(env_file.read_text().replace("models: s3://acme-ml-staging/models",
                                                     "models: s3://acme-ml-staging/registry"))
    assert g.changed(old, resolved(spec, "staging")) == {"challenger", "model"}


def test_changed_edges_cases() -> None:
    one = resolved(EXAMPLES["churn"], "dev")
    every = {n.id for n in g.build(one).nodes}
    assert g.changed(one, resolved(EXAMPLES["churn"], "dev")) == set()
    assert g.changed(None, one) == every  # a new environment or spec: all of it is new
    assert g.changed(one, None) == set()
    assert g.changed(None, None) == set()
    # another spec altogether: nodes that happen to share an id are compared by their parts
    fraud = resolved(EXAMPLES["fraud"], "dev")
    assert g.changed(one, fraud) == {n.id for n in g.build(fraud).nodes}


# --------------------------------------------------------------------------- the command


def run(*args: str):
    return CliRunner().invoke(main, ["graph", *args], env={"GITHUB_ACTIONS": None, "NO_COLOR": "1"})


def test_cli_prints_mermaid_and_dot() -> None:
    mermaid_out = run(str(EXAMPLES["churn"]))
    assert mermaid_out.exit_code == 0, mermaid_out.output
    assert mermaid_out.output == g.mermaid(g.build(resolved(EXAMPLES["churn"])))  # without --env: as written
    dot_out = run(str(EXAMPLES["churn"].parent), "--env", "prod", "--format", "dot")  # a folder holding one spec
    assert dot_out.exit_code == 0, dot_out.output
    assert dot_out.output == g.dot(g.build(resolved(EXAMPLES["churn"], "prod")))
    assert pydot.graph_from_dot_data(dot_out.output)


def test_cli_invalid_spec_exits_1_with_location(project: Path) -> None:
    spec = edited(project, "feature_service: churn_model", "feature_service: churn_modle")
    result = run(str(spec))
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "churn_modle" in text)
    assert re.search(rf"mlops\.yaml:{line}:\d+: error: unknown feature service 'churn_modle'", result.output), result.output
    assert "did you mean 'churn_model'?" in result.output and "flowchart" not in result.output


def test_cli_usage_errors_exit_1(project: Path) -> None:
    unknown = run(str(project / "examples/churn/mlops.yaml"), "--env", "qa")
    assert unknown.exit_code == 1 and "unknown environment 'qa'" in unknown.output
    several = run(str(project / "examples"))
    assert several.exit_code == 1 and "2 specs under" in several.output
    missing = run(str(project / "nope.yaml"))
    assert missing.exit_code == 1 and "nope.yaml" in missing.output
    bad_format = run(str(project / "examples/churn/mlops.yaml"), "--format", "png")
    assert bad_format.exit_code == 2


def test_cli_is_cheap_and_deterministic_across_processes() -> None:
    """No heavy imports (like validate), and the same bytes whatever the hash seed."""
    code = ("import sys\nfrom mlspec.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'kfp', 'kubernetes', 'feast', 'sklearn'})\n"
            "print('HEAVY', heavy)\n")
    outputs = []
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code, "graph", "examples/fraud/mlops.yaml", "--env", "prod"],
                              cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1] == "HEAVY []"
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]

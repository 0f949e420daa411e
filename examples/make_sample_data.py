"""Generate the small, synthetic sample data files the example specs point at.

Usage (from the repository root)::

    python examples/make_sample_data.py              # regenerates all six files in place
    python examples/make_sample_data.py --out DIR    # writes DIR/churn/data/... and DIR/fraud/data/...

Files written (paths relative to the output root, by default ``examples/``)::

    churn/data/customers.parquet     one profile snapshot per customer, 2026-09-16 .. 2026-09-30
    churn/data/transactions.parquet  purchases, 2026-09-01 .. 2026-10-31
    churn/data/labels.csv            churned 0/1 per customer, as of 2026-10-15T00:00:00Z
    fraud/data/card_events.parquet   card transactions, 2026-10-12 .. 2026-10-13
    fraud/data/merchants.csv         40 merchants, daily risk export of 2026-10-12T00:00:00Z
    fraud/data/chargebacks.parquet   is_fraud 0/1 per card, minutes after the card's last event

Column names and types follow ``data.sources[].columns`` of ``churn/mlops.yaml`` and
``fraud/mlops.yaml``: int64, float64 and string map to the Arrow types of the same name,
``unix_timestamp`` to ``timestamp[us, tz=UTC]`` in Parquet and to ISO-8601 strings such as
``2026-01-05T10:00:00Z`` in CSV.

The data is synthetic but the labels are learnable: each label is drawn from a logistic
function of the very features the spec's feature service computes (point in time, at
the label's timestamp), plus noise, so a model trained on them does well but not
perfectly.  Timestamps are laid out so that point-in-time joins with the views' TTLs
find a value for every label row:

* churn: profile snapshots are at most 30 days (the ``ttl``) before the label time;
  spend windows (30d, 7d) end at the label time; churned customers stop buying
  after they cancel, so a join that leaks future rows would show it.
* fraud: each card ends with a burst of activity and its chargeback row is stamped
  1-30 minutes after the card's last event, so the 1h and 1d windows see it; the
  merchant export is less than 2 days (the ``ttl``) older than every label.
  Each chargeback names the merchant of the card's last event (the disputed
  transaction), whose ``risk_score`` the model sees through the merchant entity.

Generation is deterministic (``numpy.random.default_rng`` with fixed seeds, no
wall-clock input, no pandas metadata): running the script twice writes byte-identical
files for a given pyarrow version.  This is a development script; pyarrow and numpy
are needed here, not by mlspec itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EXAMPLES = Path(__file__).resolve().parent

CHURN_SEED = 20260915
FRAUD_SEED = 20261012

TIMESTAMP = pa.timestamp("us", tz="UTC")
PARQUET_OPTIONS = {"compression": "zstd"}

US_PER_S = 1_000_000
MINUTE = 60
HOUR = 3600
DAY = 86400

# Churn
N_CUSTOMERS = 400
FIRST_CUSTOMER_ID = 10001
PLANS = ("basic", "standard", "premium")
PLAN_WEIGHTS = (0.45, 0.35, 0.20)
PLAN_BASE_CHARGE = (25.0, 55.0, 95.0)
CHURN_LABEL_TIME = "2026-10-15T00:00:00Z"
SNAPSHOTS_FROM = "2026-09-16T00:00:00Z"  # to 2026-09-30T23:59:59Z: within the 30d ttl
TRANSACTIONS_FROM = "2026-09-01T00:00:00Z"
TRANSACTIONS_TO = "2026-11-01T00:00:00Z"  # exclusive
TARGET_TRANSACTIONS = 3000
CHURN_INTERCEPT = 1.0

# Fraud
N_CARDS = 200
FIRST_CARD_ID = 400001
N_MERCHANTS = 40
FIRST_MERCHANT_ID = 5001
CATEGORIES = ("grocery", "travel", "electronics", "fuel", "online")
CATEGORY_WEIGHTS = (0.30, 0.15, 0.15, 0.20, 0.20)
CATEGORY_BASE_RISK = (0.08, 0.35, 0.45, 0.12, 0.55)
MERCHANTS_UPDATED_AT = "2026-10-12T00:00:00Z"
EVENTS_FROM = "2026-10-12T00:30:00Z"
LAST_BURST_FROM = "2026-10-13T02:00:00Z"
LAST_BURST_TO = "2026-10-13T22:00:00Z"  # labels <= 22:30, under 2d after the merchant export
MAX_AMOUNT = 50000.0
FRAUD_INTERCEPT = -1.5


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _epoch_s(iso: str) -> int:
    """Seconds since the epoch of an ISO-8601 UTC timestamp ending in ``Z``."""
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * US_PER_S, type=pa.int64()).cast(TIMESTAMP)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _window(
    keys: np.ndarray, times: np.ndarray, values: np.ndarray, at: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per entity ``i`` (rows with ``keys == i``): sum, count, max and mean of
    ``values`` with ``at[i] - width < times <= at[i]``.  Empty windows give 0/0/nan/nan."""
    n = len(at)
    inside = (times <= at[keys]) & (times > at[keys] - width)
    k, v = keys[inside], values[inside]
    total = np.bincount(k, weights=v, minlength=n)
    count = np.bincount(k, minlength=n).astype(np.int64)
    peak = np.full(n, np.nan)
    np.fmax.at(peak, k, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return total, count, peak, mean


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **PARQUET_OPTIONS)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(row) for row in rows]
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
# Churn
# --------------------------------------------------------------------------------------


def churn_features(
    tenure_months: np.ndarray,
    monthly_charges: np.ndarray,
    support_calls: np.ndarray,
    tx_customer: np.ndarray,
    tx_time: np.ndarray,
    tx_amount: np.ndarray,
    label_time: int,
) -> dict[str, np.ndarray]:
    """The churn_model feature service, point in time at ``label_time`` (index = customer)."""
    at = np.full(len(tenure_months), label_time, dtype=np.int64)
    spend_30d, purchases_30d, _, _ = _window(tx_customer, tx_time, tx_amount, at, 30 * DAY)
    _, _, _, avg_basket_7d = _window(tx_customer, tx_time, tx_amount, at, 7 * DAY)
    return {
        "tenure_months": tenure_months,
        "monthly_charges": monthly_charges,
        "support_calls": support_calls,
        "spend_30d": spend_30d,
        "purchases_30d": purchases_30d,
        "avg_basket_7d": avg_basket_7d,
    }


def make_churn(out_dir: Path) -> dict[str, int]:
    rng = np.random.default_rng(CHURN_SEED)
    n = N_CUSTOMERS
    ids = np.arange(FIRST_CUSTOMER_ID, FIRST_CUSTOMER_ID + n, dtype=np.int64)
    label_time = _epoch_s(CHURN_LABEL_TIME)

    # A latent dissatisfaction drives support calls up and purchasing down.
    unhappy = rng.normal(size=n)
    plan_idx = rng.choice(len(PLANS), size=n, p=PLAN_WEIGHTS)
    tenure = np.clip(np.round(rng.gamma(1.4, 20.0, size=n)), 0, 240).astype(np.int64)
    charges = np.array(PLAN_BASE_CHARGE)[plan_idx] + rng.normal(0.0, 7.0, size=n)
    charges = np.round(np.maximum(charges, 5.0), 2)
    support = rng.poisson(np.exp(0.1 + 0.55 * unhappy)).astype(np.int64)
    snapshot_time = _epoch_s(SNAPSHOTS_FROM) + rng.integers(0, 15 * DAY, size=n)

    # Purchases: a per-customer daily rate, lower for unhappy customers.
    start, stop = _epoch_s(TRANSACTIONS_FROM), _epoch_s(TRANSACTIONS_TO)
    rate = rng.gamma(2.0, 1.0, size=n) * np.exp(-0.45 * unhappy)
    rate *= TARGET_TRANSACTIONS * 1.12 / (rate.sum() * (stop - start) / DAY)
    per_customer = rng.poisson(rate * (stop - start) / DAY)
    tx_customer = np.repeat(np.arange(n), per_customer)
    tx_time = rng.integers(start, stop, size=len(tx_customer))
    basket = np.exp(np.log(30.0) + 0.35 * plan_idx - 0.15 * unhappy)
    tx_amount = np.round(basket[tx_customer] * rng.lognormal(0.0, 0.55, size=len(tx_customer)), 2)

    f = churn_features(tenure, charges, support, tx_customer, tx_time, tx_amount, label_time)
    idle_7d = np.isnan(f["avg_basket_7d"])  # no purchase in the last week
    logit = (
        CHURN_INTERCEPT
        - 0.06 * f["tenure_months"]
        + 0.04 * (f["monthly_charges"] - 50.0)
        + 0.8 * f["support_calls"]
        - 0.45 * f["purchases_30d"]
        - 0.005 * f["spend_30d"]
        + 0.6 * idle_7d
        - 0.01 * np.where(idle_7d, 0.0, f["avg_basket_7d"] - 40.0)
        + rng.normal(0.0, 0.4, size=n)
    )
    churned = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    # Churned customers cancel within 30 days of the label time and stop buying then.
    cancel_time = label_time + rng.integers(0, 30 * DAY, size=n)
    keep = (churned[tx_customer] == 0) | (tx_time <= cancel_time[tx_customer])
    tx_customer, tx_time, tx_amount = tx_customer[keep], tx_time[keep], tx_amount[keep]
    order = np.lexsort((tx_customer, tx_time))
    tx_customer, tx_time, tx_amount = tx_customer[order], tx_time[order], tx_amount[order]

    customers = pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "plan": pa.array([PLANS[i] for i in plan_idx], pa.string()),
            "tenure_months": pa.array(tenure, pa.int64()),
            "monthly_charges": pa.array(charges, pa.float64()),
            "support_calls": pa.array(support, pa.int64()),
            "event_timestamp": _timestamps(snapshot_time),
        }
    )
    transactions = pa.table(
        {
            "customer_id": pa.array(ids[tx_customer], pa.int64()),
            "amount": pa.array(tx_amount, pa.float64()),
            "event_timestamp": _timestamps(tx_time),
        }
    )
    _write_parquet(out_dir / "customers.parquet", customers)
    _write_parquet(out_dir / "transactions.parquet", transactions)
    label_iso = _iso(label_time)
    _write_csv(
        out_dir / "labels.csv",
        ["customer_id", "churned", "event_timestamp"],
        [[str(i), str(c), label_iso] for i, c in zip(ids.tolist(), churned.tolist())],
    )
    return {
        "customers": customers.num_rows,
        "transactions": transactions.num_rows,
        "labels": n,
        "positives": int(churned.sum()),
    }


# --------------------------------------------------------------------------------------
# Fraud
# --------------------------------------------------------------------------------------


def fraud_features(
    ev_card: np.ndarray,
    ev_time: np.ndarray,
    ev_amount: np.ndarray,
    ev_foreign: np.ndarray,
    ev_merchant_risk: np.ndarray,
    label_time: np.ndarray,
) -> dict[str, np.ndarray]:
    """The fraud_scoring feature service, point in time at each card's label time."""
    spend_1h, txn_count_1h, _, _ = _window(ev_card, ev_time, ev_amount, label_time, HOUR)
    _, _, max_amount_1d, _ = _window(ev_card, ev_time, ev_amount, label_time, DAY)
    _, _, _, foreign_share_1d = _window(ev_card, ev_time, ev_foreign.astype(float), label_time, DAY)
    # risk of the merchant of the card's last event at or before the label time
    risk = np.full(len(label_time), np.nan)
    before = ev_time <= label_time[ev_card]
    order = np.lexsort((ev_time[before], ev_card[before]))
    cards, risks = ev_card[before][order], ev_merchant_risk[before][order]
    last = np.flatnonzero(np.append(cards[1:] != cards[:-1], True))  # each card's last row
    risk[cards[last]] = risks[last]
    return {
        "spend_1h": spend_1h,
        "txn_count_1h": txn_count_1h,
        "max_amount_1d": max_amount_1d,
        "foreign_share_1d": foreign_share_1d,
        "risk_score": risk,
    }


def make_fraud(out_dir: Path) -> dict[str, int]:
    rng = np.random.default_rng(FRAUD_SEED)

    # Merchants: risk depends on the category.
    m_ids = np.arange(FIRST_MERCHANT_ID, FIRST_MERCHANT_ID + N_MERCHANTS, dtype=np.int64)
    m_cat = rng.choice(len(CATEGORIES), size=N_MERCHANTS, p=CATEGORY_WEIGHTS)
    m_risk = np.round(np.clip(np.array(CATEGORY_BASE_RISK)[m_cat] + rng.normal(0, 0.12, N_MERCHANTS), 0.0, 1.0), 4)
    risky_merchants = np.flatnonzero(m_risk >= 0.4)
    merchant_weight = np.where(np.array(CATEGORY_WEIGHTS)[m_cat] > 0.18, 2.0, 1.0)
    merchant_weight /= merchant_weight.sum()

    # Cards: a latent riskiness shapes the final burst of activity.
    n = N_CARDS
    card_ids = np.arange(FIRST_CARD_ID, FIRST_CARD_ID + n, dtype=np.int64)
    u = rng.normal(size=n)
    events_from = _epoch_s(EVENTS_FROM)
    burst_end = rng.integers(_epoch_s(LAST_BURST_FROM), _epoch_s(LAST_BURST_TO), size=n)

    cards, times, amounts, foreign, merchants = [], [], [], [], []
    for i in range(n):
        # background activity, before the burst
        k = rng.poisson(5.3)
        t = rng.integers(events_from, burst_end[i] - HOUR, size=k)
        cards.append(np.full(k, i))
        times.append(t)
        amounts.append(rng.lognormal(np.log(45.0), 0.8, size=k))
        foreign.append((rng.random(k) < 0.07).astype(np.int64))
        merchants.append(rng.choice(N_MERCHANTS, size=k, p=merchant_weight))
        # the burst: its last event is at burst_end
        k = 1 + rng.poisson(np.exp(0.15 + 0.55 * u[i]))
        t = np.concatenate([burst_end[i] - rng.integers(1, 55 * MINUTE, size=k - 1), [burst_end[i]]])
        cards.append(np.full(k, i))
        times.append(t)
        amounts.append(rng.lognormal(np.log(45.0) + 0.6 * max(u[i], 0.0), 0.9, size=k))
        foreign.append((rng.random(k) < _sigmoid(-1.8 + 1.1 * u[i])).astype(np.int64))
        to_risky = rng.random(k) < _sigmoid(u[i] - 0.3)
        merchants.append(
            np.where(to_risky, rng.choice(risky_merchants, size=k), rng.choice(N_MERCHANTS, size=k, p=merchant_weight))
        )
    ev_card = np.concatenate(cards)
    ev_time = np.concatenate(times).astype(np.int64)
    ev_amount = np.round(np.clip(np.concatenate(amounts), 0.0, MAX_AMOUNT), 2)
    ev_foreign = np.concatenate(foreign)
    ev_merchant = np.concatenate(merchants)
    order = np.lexsort((ev_card, ev_time))
    ev_card, ev_time, ev_amount = ev_card[order], ev_time[order], ev_amount[order]
    ev_foreign, ev_merchant = ev_foreign[order], ev_merchant[order]

    label_time = burst_end + rng.integers(MINUTE, 30 * MINUTE, size=n)
    f = fraud_features(ev_card, ev_time, ev_amount, ev_foreign, m_risk[ev_merchant], label_time)
    logit = (
        FRAUD_INTERCEPT
        + 0.9 * (np.log1p(f["spend_1h"]) - 4.5)
        + 0.7 * (f["txn_count_1h"] - 2.0)
        + 0.5 * (np.log1p(f["max_amount_1d"]) - 4.5)
        + 2.5 * (f["foreign_share_1d"] - 0.2)
        + 4.0 * (f["risk_score"] - 0.3)
        + rng.normal(0.0, 0.5, size=n)
    )
    is_fraud = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    card_events = pa.table(
        {
            "card_id": pa.array(card_ids[ev_card], pa.int64()),
            "merchant_id": pa.array(m_ids[ev_merchant], pa.int64()),
            "amount": pa.array(ev_amount, pa.float64()),
            "is_foreign": pa.array(ev_foreign, pa.int64()),
            "event_timestamp": _timestamps(ev_time),
        }
    )
    last_event = np.zeros(n, dtype=np.int64)
    last_event[ev_card] = np.arange(len(ev_card))  # events are in time order: the last write wins
    chargebacks = pa.table(
        {
            "card_id": pa.array(card_ids, pa.int64()),
            "merchant_id": pa.array(m_ids[ev_merchant[last_event]], pa.int64()),
            "is_fraud": pa.array(is_fraud, pa.int64()),
            "event_timestamp": _timestamps(label_time),
        }
    )
    _write_parquet(out_dir / "card_events.parquet", card_events)
    _write_parquet(out_dir / "chargebacks.parquet", chargebacks)
    updated = _iso(_epoch_s(MERCHANTS_UPDATED_AT))
    _write_csv(
        out_dir / "merchants.csv",
        ["merchant_id", "category", "risk_score", "updated_at"],
        [[str(m), CATEGORIES[c], f"{r:.4f}", updated] for m, c, r in zip(m_ids.tolist(), m_cat.tolist(), m_risk.tolist())],
    )
    return {
        "card_events": card_events.num_rows,
        "merchants": N_MERCHANTS,
        "chargebacks": n,
        "positives": int(is_fraud.sum()),
    }


# --------------------------------------------------------------------------------------


def main(out_root: Path | str = EXAMPLES) -> dict[str, dict[str, int]]:
    """Write all sample files under ``out_root``/{churn,fraud}/data; return row counts."""
    out_root = Path(out_root)
    return {
        "churn": make_churn(out_root / "churn" / "data"),
        "fraud": make_fraud(out_root / "fraud" / "data"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES, help="output root (default: %(default)s)")
    args = parser.parse_args()
    for example, counts in main(args.out).items():
        print(example, ", ".join(f"{k}={v}" for k, v in counts.items()))

"""The small languages inside a spec: durations, cron schedules, quantities, labels."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlspec import units

# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0s", 0), ("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600),
        ("1h30m", 5400), ("1w2d3h4m5s", 604800 + 172800 + 10800 + 240 + 5), ("007m", 420), ("1000d", 86400000),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert units.parse_duration(text) == seconds
    assert units.check_duration(text) == text


@pytest.mark.parametrize(
    "text",
    ["", "30", "d", "30 d", "30days", "1.5h", "-1h", "30m1h", "1h1h", "1H", "P1D", "1y", "1ms", " 1h", 30, None],
)
def test_bad_durations(text) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 30d, 12h, 90m or 1h30m"):
        units.parse_duration(text)


@given(st.integers(0, 10**6), st.sampled_from("wdhms"))
def test_duration_units(n: int, unit: str) -> None:
    assert units.parse_duration(f"{n}{unit}") == n * {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit]


# --- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expanded",
    [
        ("0 3 * * 1", "0 3 * * 1"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0 6-18/2 1,15 jan-jun mon-fri", "0 6-18/2 1,15 jan-jun mon-fri"),
        ("59 23 31 12 7", "59 23 31 12 7"),
        ("0 0 29 FEB *", "0 0 29 FEB *"),
        ("5/10 * * * *", "5/10 * * * *"),
        ("  0 3 * * *  ", "0 3 * * *"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_cron(text: str, expanded: str) -> None:
    assert units.parse_cron(text) == expanded
    assert units.check_cron(text) == text


@pytest.mark.parametrize(
    "text, message",
    [
        # field count
        ("0 3 * *", "'0 3 * *' has 4 fields; cron takes 5: minute hour day-of-month month day-of-week"),
        ("0 0 3 * * 1", "has 6 fields; cron takes 5"),
        ("", "'' has 0 fields"),
        # out of range
        ("60 * * * *", "minute '60' is outside 0-59"),
        ("0 24 * * *", "hour '24' is outside 0-23"),
        ("0 0 0 * *", "day of month '0' is outside 1-31"),
        ("0 0 32 * *", "day of month '32' is outside 1-31"),
        ("0 0 * 13 *", "month '13' is outside 1-12"),
        ("0 0 * * 8", "day of week '8' is outside 0-7"),
        ("0-60 * * * *", "minute '60' is outside 0-59"),
        # bad steps
        ("*/0 * * * *", "minute step '0' must be a positive number"),
        ("*/x * * * *", "minute step 'x' must be a positive number"),
        ("*/ * * * *", "minute step '' must be a positive number"),
        ("*/-5 * * * *", "minute step '-5' must be a positive number"),
        ("0 */1.5 * * *", "hour step '1.5' must be a positive number"),
        # ranges that run backwards
        ("0 3 * * 5-1", "day of week range '5-1' runs backwards"),
        ("0 0 * dec-jan *", "month range 'dec-jan' runs backwards"),
        ("30-10 * * * *", "minute range '30-10' runs backwards"),
        # names
        ("0 3 * * monday", "day of week 'monday' is not a number 0-7 or a name (sun, mon, tue, wed, thu, fri, sat)"),
        ("0 3 * january *", "month 'january' is not a number 1-12 or a name (jan, feb,"),
        ("0 mon * * *", "hour 'mon' is not a number 0-23"),
        ("? * * * *", "minute '?' is not a number 0-59"),
        ("0 3 L * *", "day of month 'L' is not a number 1-31"),
        ("0 3 * * ٣", "day of week '٣' is not a number"),  # a digit, but not an ASCII one
        # incomplete values
        ("-1 * * * *", "minute '-1' has an empty value or range end"),
        ("1- * * * *", "minute '1-' has an empty value or range end"),
        ("1,,2 * * * *", "minute '1,,2' has an empty value"),
        # macros
        ("@fortnightly", "unknown cron macro '@fortnightly'; use one of @yearly"),
        ("@dayly", "(did you mean '@daily'?)"),
        ("@reboot", "unknown cron macro '@reboot'"),
    ],
)
def test_bad_cron(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        units.parse_cron(text)
    assert message in str(info.value)


def test_cron_takes_a_string() -> None:
    with pytest.raises(ValueError, match="a cron schedule is a string"):
        units.parse_cron(5)  # type: ignore[arg-type]


_CRON_CHARS = st.text(alphabet="0123456789*/-,@ abcdefghijklmnopqrstuvwxyz\t٣²", max_size=30)


@settings(max_examples=300, deadline=None)
@given(_CRON_CHARS)
def test_cron_never_fails_other_than_value_error(text: str) -> None:
    try:
        assert len(units.parse_cron(text).split()) == 5
    except ValueError as exc:
        assert str(exc)


# --- quantities ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("500m", Decimal("0.5")), ("2", Decimal(2)), ("1.5", Decimal("1.5")), (".5", Decimal("0.5")),
        ("4Gi", Decimal(4 * 2**30)), ("512Mi", Decimal(512 * 2**20)), ("1Ki", Decimal(1024)),
        ("1k", Decimal(1000)), ("2M", Decimal(2 * 10**6)), ("1G", Decimal(10**9)), ("1T", Decimal(10**12)),
        ("1Pi", Decimal(2**50)), ("1Ei", Decimal(2**60)), ("2E", Decimal(2 * 10**18)), ("1P", Decimal(10**15)), ("1e3", Decimal(1000)), ("12E-1", Decimal("1.2")),
        ("+1", Decimal(1)), ("0", Decimal(0)), ("2048Mi", Decimal(2 * 2**30)),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert units.parse_quantity(text) == value
    assert re.fullmatch(units.QUANTITY_PATTERN, text)


@pytest.mark.parametrize("text", ["", "4GB", "1.5 cores", "-1", "1gi", "Gi", "1 Gi", "1e", "m", "1mi", "0x10", "1,5"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        units.parse_quantity(text)
    assert not re.fullmatch(units.QUANTITY_PATTERN, text)


def test_quantities_compare_across_suffixes() -> None:
    assert units.parse_quantity("3Gi") > units.parse_quantity("2048Mi")
    assert units.parse_quantity("1500m") < units.parse_quantity("2")
    assert units.parse_quantity("1G") < units.parse_quantity("1Gi")


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("team", "growth"), ("cost-center", "cc-4711"), ("app.kubernetes.io/name", "churn"),
        ("acme.example/tier", ""), ("a", "b"), ("x" * 63, "y" * 63), ("A_b.c-D", "V_1.2-z"),
    ],
)
def test_labels(key: str, value: str) -> None:
    assert units.check_label_key(key) == key and units.check_label_value(value) == value


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("-team", "x", "label key '-team' is not a valid Kubernetes label name"),
        ("team-", "x", "not a valid Kubernetes label name"),
        ("x" * 64, "x", "not a valid Kubernetes label name"),
        ("", "x", "label key '' is not a valid"),
        ("Acme.Example/tier", "x", "label key prefix 'Acme.Example' is not a DNS subdomain"),
        ("acme..example/tier", "x", "is not a DNS subdomain"),
        ("a/b/c", "x", "prefix 'a/b' is not a DNS subdomain"),
        ("team", "growth team", "label value 'growth team' is not a valid Kubernetes label value"),
        ("team", "y" * 64, "is not a valid Kubernetes label value"),
        ("team", "-x", "is not a valid Kubernetes label value"),
        ("team", "ünïcode", "is not a valid Kubernetes label value"),
    ],
)
def test_bad_labels(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        units.check_label_key(key)
        units.check_label_value(value)
    assert message in str(info.value)


def test_label_messages_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="at most 63 letters, digits, '-', '_' or '.'"):
        units.check_label_value("a b")
    with pytest.raises(ValueError, match="at most 63 letters"):
        units.check_label_key("a b")


@pytest.mark.parametrize("given, canonical", [
    # pairs as k8s.io/apimachinery's Quantity.String() prints them (quantity_test.go cases)
    ("1.5", "1500m"), ("0.5", "500m"), ("0.1", "100m"), ("1000m", "1"), ("1.0", "1"), ("250m", "250m"),
    ("1000", "1k"), ("1500", "1500"), ("2", "2"), ("1M", "1M"), ("0", "0"),
    ("1024Mi", "1Gi"), ("0.5Gi", "512Mi"), ("1536Mi", "1536Mi"), ("2000Mi", "2000Mi"), ("1Ki", "1Ki"),
    ("1e3", "1e3"), ("1.5e3", "1500"),
])
def test_canonical_quantity(given, canonical):
    from mlspec.units import canonical_quantity, parse_quantity

    assert canonical_quantity(given) == canonical
    assert parse_quantity(canonical) == parse_quantity(given)

"""Parsing of the small languages inside a spec: durations, cron, Kubernetes quantities."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# --- durations: 30d, 12h, 90m, 45s, 1h30m, 2w ----------------------------------------------

DURATION_PATTERN = r"^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION = re.compile(r"(\d+)([wdhms])")
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30d``, ``12h`` or ``1h30m``."""
    if not isinstance(text, str) or not text or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"'{text}' is not a duration such as 30d, 12h, 90m or 1h30m")
    return sum(int(n) * _SECONDS[u] for n, u in _DURATION.findall(text))


def check_duration(text: str) -> str:
    """Validate a duration and return it unchanged (a pydantic validator)."""
    parse_duration(text)
    return text


# --- timestamps: 2024-06-01, 2024-06-01T12:00:00, 2024-06-01T12:00:00+02:00 ---------------


def parse_timestamp(text: str):
    """An ISO 8601 date or date-time as an aware :class:`datetime.datetime` (naive means UTC)."""
    from datetime import datetime, timezone

    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?", text):
        raise ValueError(f"'{text}' is not an ISO 8601 timestamp such as 2024-06-01 or 2024-06-01T00:00:00Z")
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"'{text}' is not a valid date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def check_timestamp(text: str) -> str:
    """Validate an ISO 8601 timestamp and return it unchanged (a pydantic validator)."""
    parse_timestamp(text)
    return text


# --- cron -----------------------------------------------------------------------------------

_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
)


def _cron_value(token: str, lo: int, hi: int, names: dict[str, int], field: str) -> int:
    is_number = token.isascii() and token.isdigit()
    value = int(token) if is_number else names.get(token.lower())
    if value is None:
        expected = f"a number {lo}-{hi}" + (f" or a name ({', '.join(names)})" if names else "")
        raise ValueError(f"{field} '{token}' is not {expected}")
    if not lo <= value <= hi:
        raise ValueError(f"{field} '{token}' is outside {lo}-{hi}")
    return value


def parse_cron(text: str) -> str:
    """Validate a five-field cron expression (or @macro); return it in five-field form."""
    if not isinstance(text, str):
        raise ValueError("a cron schedule is a string such as '0 3 * * *'")
    expr = _CRON_MACROS.get(text.strip(), text.strip())
    if expr.startswith("@"):
        import difflib  # here: only an unknown macro needs it

        close = difflib.get_close_matches(expr, list(_CRON_MACROS), n=1, cutoff=0.6)
        raise ValueError(
            f"unknown cron macro '{expr}'; use one of {', '.join(_CRON_MACROS)}"
            + (f" (did you mean '{close[0]}'?)" if close else "")
        )
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            f"'{text}' has {len(parts)} fields; cron takes 5: minute hour day-of-month month day-of-week"
        )
    for part, (field, lo, hi, names) in zip(parts, _CRON_FIELDS):
        for item in part.split(","):
            base, slash, step = item.partition("/")
            if slash and (not (step.isascii() and step.isdigit()) or int(step) == 0):
                raise ValueError(f"{field} step '{step}' must be a positive number")
            if base == "*":
                continue
            start, dash, end = base.partition("-")
            if not start or (dash and not end):
                raise ValueError(f"{field} '{part}' has an empty value or range end")
            a = _cron_value(start, lo, hi, names, field)
            if dash:
                b = _cron_value(end, lo, hi, names, field)
                if a > b:
                    raise ValueError(f"{field} range '{base}' runs backwards")
    return expr


def check_cron(text: str) -> str:
    """Validate a cron schedule and return it unchanged (a pydantic validator)."""
    parse_cron(text)
    return text


# --- Kubernetes quantities --------------------------------------------------------------------

QUANTITY_PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
_SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity (``500m`` → 0.5, ``4Gi`` → 4294967296)."""
    text = str(text)
    match = re.fullmatch(QUANTITY_PATTERN, text)
    if not match:
        raise ValueError(f"'{text}' is not a Kubernetes quantity such as 500m, 2 or 4Gi")
    number, suffix = match.group(1), match.group(3) or ""
    try:
        if suffix not in _SUFFIX:  # an exponent such as e3 (E alone and Ei are suffixes)
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation:  # pragma: no cover - the pattern admits valid decimals only
        raise ValueError(f"'{text}' is not a Kubernetes quantity") from None


_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def canonical_quantity(text: str) -> str:
    """The form the API server (and every webhook that decodes a PodSpec) writes a quantity
    back in, so that git and the live object agree and Argo CD sees no drift
    (argoproj/argo-cd#12463): ``1.5`` → ``1500m``, ``1024Mi`` → ``1Gi``, ``0.5Gi`` → ``512Mi``,
    ``1000`` → ``1k``.  As ``resource.Quantity.String()`` (k8s.io/apimachinery
    pkg/api/resource quantity.go ``CanonicalizeBytes``, amount.go ``AsCanonicalBytes``,
    ``AsCanonicalBase1024Bytes``): binary suffixes stay binary (the largest power of 1024 that
    divides the value) unless the value is fractional or below 1024; otherwise the mantissa
    loses its trailing zeros and the exponent drops to a multiple of 3."""
    text = str(text)
    value = parse_quantity(text)
    match = re.fullmatch(QUANTITY_PATTERN, text)
    suffix = match.group(3) or "" if match else ""
    exponent_form = bool(suffix) and suffix[0] in "eE" and suffix not in _SUFFIX
    if value == 0:
        return "0"
    if suffix.endswith("i") and value == value.to_integral_value() and abs(value) >= 1024:
        amount, power = int(value), 0
        while amount % 1024 == 0 and power < len(_BINARY_SUFFIX) - 1:
            amount //= 1024
            power += 1
        return f"{amount}{_BINARY_SUFFIX[power]}"
    sign, digits, exp = value.normalize().as_tuple()
    mantissa = int("".join(map(str, digits)))
    exp = int(exp)
    while mantissa % 10 == 0 and mantissa:
        mantissa //= 10
        exp += 1
    shift = exp % 3
    mantissa *= 10 ** shift
    exp -= shift
    if exp < -9:  # below a nano: the API server rounds up to 1n
        mantissa, exp = 1, -9
    while exp > 18:
        mantissa *= 1000
        exp -= 3
    number = f"{'-' if sign else ''}{mantissa}"
    if exponent_form:
        return number if exp == 0 else f"{number}e{exp}"
    return number + _DECIMAL_SUFFIX[exp]


# --- labels -----------------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


_LABEL_RULE = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def check_label_key(key: str) -> str:
    """Validate a Kubernetes label key (``[prefix/]name``) and return it (a pydantic validator)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        raise ValueError(f"label key prefix '{prefix}' is not a DNS subdomain")
    if not _LABEL_NAME.match(name):
        raise ValueError(f"label key '{key}' is not a valid Kubernetes label name: {_LABEL_RULE}")
    return key


def check_label_value(value: str) -> str:
    """Validate a Kubernetes label value (may be empty) and return it (a pydantic validator)."""
    if value and not _LABEL_NAME.match(value):
        raise ValueError(f"label value '{value}' is not a valid Kubernetes label value: {_LABEL_RULE}")
    return value


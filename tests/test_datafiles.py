"""Tests for mlspec.datafiles: Parquet footers, CSV inference, dtype compatibility.

pyarrow (a test dependency only) writes the Parquet files; the module under test must
agree with it without importing it.
"""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlspec.datafiles import (
    CSV_SAMPLE_ROWS,
    DECLARABLE_DTYPES,
    DTYPES,
    DataFileError,
    compatible,
    read_columns,
)

REPO = Path(__file__).resolve().parents[1]


def write_parquet(path: Path, table: pa.Table, **options: Any) -> Path:
    pq.write_table(table, path, **options)
    return path


def assert_columns(path: Path, expected: dict[str, str]) -> None:
    """read_columns gives ``expected``, with pyarrow's own names in pyarrow's order."""
    columns = read_columns(path)
    assert list(columns) == pq.read_schema(path).names
    assert columns == expected


# --------------------------------------------------------------------------------------
# Parquet written by pyarrow
# --------------------------------------------------------------------------------------

EPOCH_MS = 1_700_000_000_000

# name: (arrow type, two sample values, expected dtype).  The samples survive any
# timestamp coercion the writer options may ask for.
ARROW_CASES: dict[str, tuple[pa.DataType, list[Any], str]] = {
    "bool": (pa.bool_(), [True, None], "bool"),
    "int8": (pa.int8(), [-128, 127], "int32"),
    "int16": (pa.int16(), [-1, 2], "int32"),
    "int32": (pa.int32(), [-(2**31), None], "int32"),
    "int64": (pa.int64(), [2**62, -1], "int64"),
    "uint8": (pa.uint8(), [0, 255], "int32"),
    "uint16": (pa.uint16(), [0, 65535], "int32"),
    "uint32": (pa.uint32(), [0, 2**32 - 1], "int64"),
    "uint64": (pa.uint64(), [0, 2**40], "int64"),
    "float16": (pa.float16(), [None, None], "float32"),
    "float32": (pa.float32(), [1.5, None], "float32"),
    "float64": (pa.float64(), [1.5, float("nan")], "float64"),
    "ts_s": (pa.timestamp("s"), [EPOCH_MS // 1000, None], "unix_timestamp"),
    "ts_ms": (pa.timestamp("ms"), [EPOCH_MS, None], "unix_timestamp"),
    "ts_us": (pa.timestamp("us"), [EPOCH_MS * 1000, None], "unix_timestamp"),
    "ts_ns": (pa.timestamp("ns"), [EPOCH_MS * 10**6, None], "unix_timestamp"),
    "ts_ms_utc": (pa.timestamp("ms", "UTC"), [EPOCH_MS, None], "unix_timestamp"),
    "ts_us_tz": (pa.timestamp("us", "Europe/Paris"), [EPOCH_MS * 1000, None], "unix_timestamp"),
    "ts_ns_tz": (
        pa.timestamp("ns", "America/New_York"),
        [EPOCH_MS * 10**6, None],
        "unix_timestamp",
    ),
    "date32": (pa.date32(), [dt.date(2024, 2, 29), None], "date"),
    "date64": (pa.date64(), [dt.date(1970, 1, 1), None], "date"),
    "decimal_small": (pa.decimal128(5, 2), [Decimal("123.45"), None], "float64"),
    "decimal_wide": (pa.decimal128(38, 10), [Decimal("1.5"), None], "float64"),
    "time32": (pa.time32("ms"), [1000, None], "unknown"),
    "time64": (pa.time64("us"), [1000, None], "unknown"),
    "null": (pa.null(), [None, None], "unknown"),
    "duration": (pa.duration("s"), [1, None], "int64"),
    "string": (pa.string(), ["a", None], "string"),
    "large_string": (pa.large_string(), ["ü", ""], "string"),
    "binary": (pa.binary(), [b"\x00\xff", None], "bytes"),
    "large_binary": (pa.large_binary(), [b"x", None], "bytes"),
    "fixed_binary": (pa.binary(3), [b"abc", None], "bytes"),
    "struct": (
        pa.struct([("a", pa.int32()), ("b", pa.string())]),
        [{"a": 1, "b": "x"}, None],
        "unknown",
    ),
    "list": (pa.list_(pa.int64()), [[1, 2], None], "unknown"),
    "large_list": (pa.large_list(pa.string()), [["a"], []], "unknown"),
    "nested_list": (pa.list_(pa.list_(pa.int8())), [[[1]], None], "unknown"),
    "map": (pa.map_(pa.string(), pa.int32()), [[("k", 1)], None], "unknown"),
}

WRITE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"compression": "none"},
    {"compression": "gzip", "use_dictionary": False},
    *(
        {"compression": codec}
        for codec in ("snappy", "zstd", "brotli", "lz4")
        if pa.Codec.is_available(codec)
    ),
    {"version": "1.0"},
    {"version": "2.4", "data_page_version": "2.0"},
    {"use_deprecated_int96_timestamps": True},
    {"coerce_timestamps": "ms", "allow_truncated_timestamps": True},
    # Decimals as INT32/INT64 rather than FIXED_LEN_BYTE_ARRAY (pyarrow >= 19).
    *(
        [{"store_decimal_as_integer": True}]
        if "store_decimal_as_integer" in inspect.signature(pq.write_table).parameters
        else []
    ),
    {"store_schema": False},
    {"use_compliant_nested_type": False},
    {"row_group_size": 1},
]


def all_types_table() -> pa.Table:
    arrays = {name: pa.array(values, type_) for name, (type_, values, _) in ARROW_CASES.items()}
    arrays["dict_string"] = pa.array(["a", "b"]).dictionary_encode()
    return pa.table(arrays)


ALL_TYPES_EXPECTED = {name: expected for name, (_, _, expected) in ARROW_CASES.items()} | {
    "dict_string": "string"
}


@pytest.mark.parametrize(
    "options", WRITE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_parquet_all_types(tmp_path: Path, options: dict[str, Any]) -> None:
    path = write_parquet(tmp_path / "all.parquet", all_types_table(), **options)
    assert_columns(path, ALL_TYPES_EXPECTED)


@pytest.mark.parametrize("name", sorted(ARROW_CASES))
def test_parquet_single_column(tmp_path: Path, name: str) -> None:
    type_, values, expected = ARROW_CASES[name]
    path = write_parquet(tmp_path / "one.parquet", pa.table({name: pa.array(values, type_)}))
    assert_columns(path, {name: expected})


def test_parquet_extension_types(tmp_path: Path) -> None:
    arrays: dict[str, pa.Array] = {}
    expected: dict[str, str] = {}
    if hasattr(pa, "uuid"):
        arrays["uuid"] = pa.ExtensionArray.from_storage(
            pa.uuid(), pa.array([b"0" * 16], pa.binary(16))
        )
        expected["uuid"] = "bytes"
    if hasattr(pa, "json_"):
        arrays["json"] = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}']))
        expected["json"] = "string"
    if not arrays:
        pytest.skip("this pyarrow has no canonical extension types")
    assert_columns(write_parquet(tmp_path / "ext.parquet", pa.table(arrays)), expected)


@pytest.mark.parametrize(
    "index, expected_index",
    [
        (None, {}),  # a RangeIndex is kept as metadata only
        (pd.Index([10, 20, 30]), {"__index_level_0__": "int64"}),
        (pd.Index(["a", "b", "c"], name="key"), {"key": "string"}),
        (
            pd.MultiIndex.from_arrays([[1, 2, 3], ["x", "y", "z"]]),
            {"__index_level_0__": "int64", "__index_level_1__": "string"},
        ),
    ],
)
def test_parquet_from_pandas(
    tmp_path: Path, index: pd.Index | None, expected_index: dict[str, str]
) -> None:
    df = pd.DataFrame(
        {
            "f": [1.0, 2.0, None],
            "i": [1, 2, 3],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
            "tz": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).tz_localize("UTC"),
            "c": pd.Categorical(["x", "y", "x"]),
        }
    )
    if index is not None:
        df.index = index
    path = write_parquet(tmp_path / "pandas.parquet", pa.Table.from_pandas(df))
    base = {
        "f": "float64",
        "i": "int64",
        "s": "string",
        "b": "bool",
        "t": "unix_timestamp",
        "tz": "unix_timestamp",
        "c": "string",
    }
    assert_columns(path, base | expected_index)


def test_parquet_empty_table(tmp_path: Path) -> None:
    assert_columns(write_parquet(tmp_path / "empty.parquet", pa.table({})), {})
    table = pa.table({"a": pa.array([], pa.int32())})
    assert_columns(write_parquet(tmp_path / "norows.parquet", table), {"a": "int32"})


def test_parquet_duplicate_column_names(tmp_path: Path) -> None:
    table = pa.table([pa.array([1]), pa.array(["x"])], names=["a", "a"])
    with pytest.raises(DataFileError, match="duplicate column name 'a'"):
        read_columns(write_parquet(tmp_path / "dup.parquet", table))


def test_parquet_format_from_extension_or_argument(tmp_path: Path) -> None:
    table = pa.table({"x": [1]})
    for name in ("a.parquet", "b.PQ", "c.Parquet"):
        assert read_columns(write_parquet(tmp_path / name, table)) == {"x": "int64"}
    assert read_columns(write_parquet(tmp_path / "data.bin", table), fmt="parquet") == {
        "x": "int64"
    }
    assert read_columns(str(tmp_path / "a.parquet")) == {"x": "int64"}
    with pytest.raises(DataFileError, match="not a Parquet file"):
        read_columns(_write(tmp_path / "x.parquet", b"a,b\n1,2\n"))


# --------------------------------------------------------------------------------------
# Parquet: random tables
# --------------------------------------------------------------------------------------


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


# name: (arrow type factory, value strategy, expected dtype)
RANDOM_CASES: dict[str, tuple[Callable[[], pa.DataType], st.SearchStrategy[Any], str]] = {
    "bool": (pa.bool_, st.booleans(), "bool"),
    "int8": (pa.int8, _ints(-128, 127), "int32"),
    "int16": (pa.int16, _ints(-(2**15), 2**15 - 1), "int32"),
    "int32": (pa.int32, _ints(-(2**31), 2**31 - 1), "int32"),
    "int64": (pa.int64, _ints(-(2**63), 2**63 - 1), "int64"),
    "uint8": (pa.uint8, _ints(0, 255), "int32"),
    "uint16": (pa.uint16, _ints(0, 2**16 - 1), "int32"),
    "uint32": (pa.uint32, _ints(0, 2**32 - 1), "int64"),
    "uint64": (pa.uint64, _ints(0, 2**64 - 1), "int64"),
    "float32": (pa.float32, st.floats(width=32), "float32"),
    "float64": (pa.float64, st.floats(), "float64"),
    "timestamp_ms": (lambda: pa.timestamp("ms"), _ints(-(10**12), 10**13), "unix_timestamp"),
    "timestamp_us_utc": (
        lambda: pa.timestamp("us", "UTC"),
        _ints(-(10**15), 10**15).map(lambda v: v * 1000),
        "unix_timestamp",
    ),
    "timestamp_ns": (
        lambda: pa.timestamp("ns"),
        _ints(-(10**15), 10**15).map(lambda v: v * 1000),
        "unix_timestamp",
    ),
    "date32": (pa.date32, st.dates(), "date"),
    "decimal": (
        lambda: pa.decimal128(12, 3),
        _ints(-(10**12) + 1, 10**12 - 1).map(lambda v: Decimal(v).scaleb(-3)),
        "float64",
    ),
    "string": (pa.string, st.text(max_size=20), "string"),
    "large_string": (pa.large_string, st.text(max_size=20), "string"),
    "binary": (pa.binary, st.binary(max_size=20), "bytes"),
    "fixed_binary": (lambda: pa.binary(4), st.binary(min_size=4, max_size=4), "bytes"),
    "struct": (
        lambda: pa.struct([("x", pa.int64())]),
        st.fixed_dictionaries({"x": _ints(0, 9)}),
        "unknown",
    ),
    "list": (lambda: pa.list_(pa.string()), st.lists(st.text(max_size=3), max_size=3), "unknown"),
}


@st.composite
def random_tables(draw: st.DrawFn) -> tuple[pa.Table, dict[str, str], dict[str, Any]]:
    names = draw(st.lists(st.text(max_size=12), max_size=8, unique=True))
    n_rows = draw(st.integers(0, 50))
    arrays, expected = [], {}
    for name in names:
        kind = draw(st.sampled_from(sorted(RANDOM_CASES) + ["dictionary"]))
        if kind == "dictionary":
            values = draw(
                st.lists(
                    st.none() | st.sampled_from(["a", "bb", "ç"]), min_size=n_rows, max_size=n_rows
                )
            )
            arrays.append(pa.array(values, pa.string()).dictionary_encode())
            expected[name] = "string"
            continue
        type_factory, strategy, dtype = RANDOM_CASES[kind]
        values = draw(st.lists(st.none() | strategy, min_size=n_rows, max_size=n_rows))
        arrays.append(pa.array(values, type_factory()))
        expected[name] = dtype
    options = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "compression": st.sampled_from(["none", "snappy", "gzip", "zstd"]),
                "use_dictionary": st.booleans(),
                "version": st.sampled_from(["1.0", "2.4", "2.6"]),
                "write_statistics": st.booleans(),
            },
        )
    )
    return pa.table(arrays, names=names), expected, options


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=random_tables())
def test_parquet_random_tables(
    tmp_path: Path, case: tuple[pa.Table, dict[str, str], dict[str, Any]]
) -> None:
    table, expected, options = case
    assert_columns(write_parquet(tmp_path / "random.parquet", table, **options), expected)


# --------------------------------------------------------------------------------------
# Parquet: hand-made footers (Thrift compact protocol, encoded here)
# --------------------------------------------------------------------------------------

T_TRUE, T_FALSE, T_BYTE, T_I16, T_I32, T_I64, T_DOUBLE, T_BINARY = 1, 2, 3, 4, 5, 6, 7, 8
T_LIST, T_SET, T_MAP, T_STRUCT = 9, 10, 11, 12

Field = tuple[int, int, bytes]  # field id, compact type, encoded value


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def zigzag(n: int) -> bytes:
    return varint((n << 1) ^ (n >> 63))


def struct(*fields: Field, long_form: bool = False) -> bytes:
    out, last = bytearray(), 0
    for field_id, ttype, value in fields:
        delta = field_id - last
        if 0 < delta <= 15 and not long_form:
            out.append(delta << 4 | ttype)
        else:
            out += bytes([ttype]) + zigzag(field_id)
        out += value
        last = field_id
    return bytes(out + b"\x00")


def i32(field_id: int, value: int) -> Field:
    return field_id, T_I32, zigzag(value)


def binary(field_id: int, value: bytes | str) -> Field:
    raw = value.encode() if isinstance(value, str) else value
    return field_id, T_BINARY, varint(len(raw)) + raw


def boolean(field_id: int, value: bool) -> Field:
    return field_id, T_TRUE if value else T_FALSE, b""


def list_header(etype: int, size: int) -> bytes:
    return bytes([size << 4 | etype]) if size < 15 else bytes([0xF0 | etype]) + varint(size)


def list_field(field_id: int, etype: int, items: list[bytes], ttype: int = T_LIST) -> Field:
    return field_id, ttype, list_header(etype, len(items)) + b"".join(items)


def struct_field(field_id: int, body: bytes) -> Field:
    return field_id, T_STRUCT, body


# Every Thrift type the skipper must step over, nested a little.
EXOTIC_FIELDS: list[Field] = [
    boolean(20, True),
    boolean(21, False),
    (22, T_BYTE, b"\xff"),
    (23, T_I16, zigzag(-300)),
    (24, T_I64, zigzag(-(2**62))),
    (25, T_DOUBLE, b"\x00" * 8),
    binary(26, b"\x00\xff\xfe"),
    list_field(27, T_TRUE, [b"\x01", b"\x02", b"\x00"]),
    list_field(28, T_I64, [zigzag(v) for v in range(40)], ttype=T_SET),
    list_field(
        29, T_STRUCT, [struct(boolean(1, True), list_field(2, T_BINARY, [varint(1) + b"x"]))] * 2
    ),
    (
        30,
        T_MAP,
        varint(2)
        + bytes([T_BINARY << 4 | T_LIST])
        + (varint(1) + b"k" + list_header(T_DOUBLE, 1) + b"\x00" * 8) * 2,
    ),
    (31, T_MAP, varint(0)),
    (32, T_MAP, varint(1) + bytes([T_TRUE << 4 | T_STRUCT]) + b"\x01" + struct(i32(1, 5))),
    struct_field(33, struct(struct_field(1, struct(struct_field(1, struct(i32(7, -1))))))),
    list_field(34, T_LIST, [list_header(T_I32, 2) + zigzag(1) + zigzag(2)]),
    (1000, T_I32, zigzag(7)),  # needs the long-form header
]


def logical(member: int, body: bytes = b"\x00") -> Field:
    return struct_field(10, struct((member, T_STRUCT, body)))


def int_logical(bits: int, signed: bool) -> Field:
    return logical(10, struct((1, T_BYTE, bytes([bits])), boolean(2, signed)))


def element(
    name: str | None,
    *fields: Field,
    physical: int | None = None,
    children: int | None = None,
    long_form: bool = False,
    extra: list[Field] | None = None,
) -> bytes:
    parts: list[Field] = []
    if physical is not None:
        parts.append(i32(1, physical))
    if name is not None:
        parts.append(binary(4, name))
    if children is not None:
        parts.append(i32(5, children))
    parts += fields
    parts += extra or []
    parts.sort(key=lambda f: f[0])
    return struct(*parts, long_form=long_form)


def footer(
    elements: list[bytes], before: list[Field] | None = None, long_form: bool = False
) -> bytes:
    """A FileMetaData; ``before`` puts fields ahead of the schema."""
    meta = [
        i32(1, 2),
        list_field(2, T_STRUCT, elements),
        (3, T_I64, zigzag(0)),
        list_field(4, T_STRUCT, []),
    ]
    return struct(*(before or []), *meta, long_form=long_form)


def parquet_bytes(footer_bytes: bytes) -> bytes:
    return b"PAR1" + footer_bytes + len(footer_bytes).to_bytes(4, "little") + b"PAR1"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def root(n: int, long_form: bool = False) -> bytes:
    return element("schema", children=n, long_form=long_form)


BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE, BYTE_ARRAY, FLBA = range(8)
CONVERTED = {
    "UTF8": 0,
    "ENUM": 4,
    "DECIMAL": 5,
    "DATE": 6,
    "TIME_MILLIS": 7,
    "TIME_MICROS": 8,
    "TIMESTAMP_MILLIS": 9,
    "TIMESTAMP_MICROS": 10,
    "UINT_8": 11,
    "UINT_32": 13,
    "UINT_64": 14,
    "INT_8": 15,
    "INT_16": 16,
    "INT_64": 18,
    "JSON": 19,
    "BSON": 20,
    "INTERVAL": 21,
}

# (name, physical type, extra fields, expected dtype)
CRAFTED_COLUMNS: list[tuple[str, int, list[Field], str]] = [
    ("bool", BOOLEAN, [], "bool"),
    ("i32", INT32, [], "int32"),
    ("i64", INT64, [], "int64"),
    ("int96", INT96, [], "unix_timestamp"),
    ("float", FLOAT, [], "float32"),
    ("double", DOUBLE, [], "float64"),
    ("raw", BYTE_ARRAY, [], "bytes"),
    ("fixed", FLBA, [i32(2, 16)], "bytes"),
    ("c_utf8", BYTE_ARRAY, [i32(6, CONVERTED["UTF8"])], "string"),
    ("c_enum", BYTE_ARRAY, [i32(6, CONVERTED["ENUM"])], "string"),
    ("c_json", BYTE_ARRAY, [i32(6, CONVERTED["JSON"])], "string"),
    ("c_bson", BYTE_ARRAY, [i32(6, CONVERTED["BSON"])], "bytes"),
    ("c_date", INT32, [i32(6, CONVERTED["DATE"])], "date"),
    ("c_ts_ms", INT64, [i32(6, CONVERTED["TIMESTAMP_MILLIS"])], "unix_timestamp"),
    ("c_ts_us", INT64, [i32(6, CONVERTED["TIMESTAMP_MICROS"])], "unix_timestamp"),
    ("c_time_ms", INT32, [i32(6, CONVERTED["TIME_MILLIS"])], "unknown"),
    ("c_time_us", INT64, [i32(6, CONVERTED["TIME_MICROS"])], "unknown"),
    ("c_int8", INT32, [i32(6, CONVERTED["INT_8"])], "int32"),
    ("c_int16", INT32, [i32(6, CONVERTED["INT_16"])], "int32"),
    ("c_uint8", INT32, [i32(6, CONVERTED["UINT_8"])], "int32"),
    ("c_uint32", INT32, [i32(6, CONVERTED["UINT_32"])], "int64"),
    ("c_uint64", INT64, [i32(6, CONVERTED["UINT_64"])], "int64"),
    ("c_int64", INT64, [i32(6, CONVERTED["INT_64"])], "int64"),
    ("c_dec32", INT32, [i32(6, CONVERTED["DECIMAL"]), i32(7, 2), i32(8, 9)], "float64"),
    (
        "c_dec_fixed",
        FLBA,
        [i32(2, 8), i32(6, CONVERTED["DECIMAL"]), i32(7, 2), i32(8, 18)],
        "float64",
    ),
    ("c_interval", FLBA, [i32(2, 12), i32(6, CONVERTED["INTERVAL"])], "unknown"),
    ("l_string", BYTE_ARRAY, [logical(1)], "string"),
    ("l_enum", BYTE_ARRAY, [logical(4)], "string"),
    ("l_decimal", INT64, [logical(5, struct(i32(1, 2), i32(2, 18)))], "float64"),
    ("l_date", INT32, [logical(6)], "date"),
    (
        "l_time",
        INT64,
        [logical(7, struct(boolean(1, True), struct_field(2, struct(struct_field(2, b"\x00")))))],
        "unknown",
    ),
    (
        "l_ts",
        INT64,
        [logical(8, struct(boolean(1, False), struct_field(2, struct(struct_field(3, b"\x00")))))],
        "unix_timestamp",
    ),
    ("l_int8", INT32, [int_logical(8, True)], "int32"),
    ("l_uint16", INT32, [int_logical(16, False)], "int32"),
    ("l_int32", INT32, [int_logical(32, True)], "int32"),
    ("l_uint32", INT32, [int_logical(32, False)], "int64"),
    ("l_uint64", INT64, [int_logical(64, False)], "int64"),
    ("l_null", INT32, [logical(11)], "unknown"),
    ("l_json", BYTE_ARRAY, [logical(12)], "string"),
    ("l_bson", BYTE_ARRAY, [logical(13)], "bytes"),
    ("l_uuid", FLBA, [i32(2, 16), logical(14)], "bytes"),
    ("l_float16", FLBA, [i32(2, 2), logical(15)], "float32"),
    ("l_future", BYTE_ARRAY, [logical(99)], "bytes"),
    ("repeated_leaf", INT32, [i32(3, 2)], "unknown"),
    ("bad_physical", 42, [], "unknown"),
    ("unicode ✓ 名前", DOUBLE, [i32(3, 1)], "float64"),
]


def crafted_file(long_form: bool = False, exotic: bool = False) -> tuple[bytes, dict[str, str]]:
    extra = EXOTIC_FIELDS if exotic else []
    leaves = [
        element(name, *fields, physical=physical, long_form=long_form, extra=extra)
        for name, physical, fields, _ in CRAFTED_COLUMNS
    ]
    # A group column whose subtree (a struct holding a list) must be passed over.
    group = [
        element("group", children=2, long_form=long_form),
        element("a", physical=INT32, long_form=long_form),
        element("b", children=1, long_form=long_form, extra=extra),
        element("list", children=1, long_form=long_form),
        element("element", physical=INT64, long_form=long_form),
    ]
    elements = [root(len(leaves) + 1, long_form), *leaves[:3], *group, *leaves[3:]]
    expected = {name: dtype for name, _, _, dtype in CRAFTED_COLUMNS[:3]} | {"group": "unknown"}
    expected |= {name: dtype for name, _, _, dtype in CRAFTED_COLUMNS[3:]}
    before = EXOTIC_FIELDS if exotic else None
    return parquet_bytes(footer(elements, before=before, long_form=long_form)), expected


@pytest.mark.parametrize("long_form", [False, True], ids=["short-headers", "long-headers"])
@pytest.mark.parametrize("exotic", [False, True], ids=["plain", "exotic-fields"])
def test_crafted_footer(tmp_path: Path, long_form: bool, exotic: bool) -> None:
    data, expected = crafted_file(long_form=long_form, exotic=exotic)
    columns = read_columns(_write(tmp_path / "crafted.parquet", data))
    assert columns == expected
    assert list(columns) == list(expected)


def test_crafted_footer_agrees_with_pyarrow(tmp_path: Path) -> None:
    """pyarrow accepts the hand-made footer too, so the encoder above is honest."""
    # pyarrow wants num_rows and row_groups; a file without row groups is valid.
    required = i32(3, 0)
    elements = [
        root(2),
        element("x", required, physical=INT64),
        element("s", required, logical(1), physical=BYTE_ARRAY),
    ]
    path = _write(tmp_path / "tiny.parquet", parquet_bytes(footer(elements, long_form=True)))
    assert pq.read_schema(path).types == [pa.int64(), pa.string()]
    assert_columns(path, {"x": "int64", "s": "string"})


BAD_FOOTERS: dict[str, tuple[bytes, str]] = {
    "empty struct": (b"\x00", "no schema"),
    "no stop byte": (struct(i32(1, 2))[:-1], "unexpected end"),
    "schema not structs": (struct(list_field(2, T_I32, [zigzag(1)])), "not a list of structs"),
    "empty schema": (footer([]), "empty schema"),
    "unknown thrift type": (
        struct((7, 13, b""), list_field(2, T_STRUCT, [root(0)])),
        "unknown Thrift type 13",
    ),
    "type 0 in header": (bytes([0x10]) + b"\x00", "unknown Thrift type 0"),
    "varint too long": (bytes([0x15]) + b"\xff" * 11, "varint longer"),
    "list overruns": (
        bytes([0x99, 0xF6]) + varint(1000) + b"\x00" * 999,
        "list of 1000 elements overruns",
    ),
    "list too long": (bytes([0x99, 0xF6]) + varint(2**40), "larger than 1000000"),
    "schema too long": (bytes([0x29, 0xFC]) + varint(10**6 + 1), "larger than 1000000"),
    "map overruns": (
        bytes([0x9B]) + varint(500) + b"\x55" + b"\x00" * 998,
        "map of 500 elements overruns",
    ),
    "map too long": (bytes([0x9B]) + varint(10**9) + b"\x55", "larger than 1000000"),
    "binary overruns": (bytes([0x98]) + varint(10**6) + b"abc", "unexpected end"),
    "deep structs": (bytes([0x9C]) + bytes([0x1C]) * 200, "nested more than 64"),
    "deep lists": (bytes([0x99]) + bytes([0x19]) * 200, "nested more than 64"),
    "deep logical": (
        footer([element("x", (10, T_STRUCT, bytes([0x1C]) * 200), physical=INT32)]),
        "nested more than 64",
    ),
    "negative children": (footer([root(-1)]), "negative num_children"),
    "too few elements": (footer([root(3), element("a", physical=INT32)]), "fewer elements"),
    "too many elements": (
        footer([root(1), element("a", physical=INT32), element("b", physical=INT32)]),
        "more elements",
    ),
    "group cut short": (
        footer([root(1), element("g", children=5), element("a", physical=INT32)]),
        "cut short",
    ),
    "huge root": (footer([root(2**62), element("a", physical=INT32)]), "fewer elements"),
    "nameless column": (footer([root(1), element(None, physical=INT32)]), "without a name"),
    "name not utf-8": (
        footer([root(1), element(None, binary(4, b"\xff\xfe"), physical=INT32)]),
        "not UTF-8",
    ),
    "duplicate names": (
        footer([root(2), element("a", physical=INT32), element("a", physical=INT64)]),
        "duplicate column name",
    ),
}


@pytest.mark.parametrize("name", BAD_FOOTERS)
def test_bad_footer(tmp_path: Path, name: str) -> None:
    footer_bytes, message = BAD_FOOTERS[name]
    with pytest.raises(DataFileError, match=message):
        read_columns(_write(tmp_path / "bad.parquet", parquet_bytes(footer_bytes)))


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "only 0 bytes"),
    "tiny": (b"PAR1PAR1", "only 8 bytes"),
    "csv": (b"a,b,c\n1,2,3\n", "does not start with PAR1"),
    "no tail magic": (b"PAR1" + b"\x00" * 20, "does not end with PAR1"),
    "encrypted": (b"PARE" + b"\x00" * 10 + b"\x0a\x00\x00\x00PARE", "encrypted"),
    "footer longer than file": (
        b"PAR1" + b"\x00" * 10 + (11).to_bytes(4, "little") + b"PAR1",
        "footer of 11 bytes in a 22-byte file",
    ),
    "footer length max": (b"PAR1" + b"\x00" * 10 + b"\xff\xff\xff\xffPAR1", "truncated"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_parquet_file(tmp_path: Path, name: str) -> None:
    data, message = BAD_FILES[name]
    with pytest.raises(DataFileError, match=message):
        read_columns(_write(tmp_path / "bad.parquet", data))


def test_parquet_footer_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    size = 20 * 1024 * 1024
    with path.open("wb") as f:  # sparse: nothing is written between the magics
        f.write(b"PAR1")
        f.seek(size - 8)
        f.write((17 * 1024 * 1024).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(DataFileError, match="too large"):
        read_columns(path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read"):
        read_columns(tmp_path / "missing.parquet")
    with pytest.raises(DataFileError, match="cannot read"):
        read_columns(tmp_path, fmt="csv")
    with pytest.raises(DataFileError, match="from its extension"):
        read_columns(_write(tmp_path / "data.json", b"{}"))
    with pytest.raises(DataFileError, match="from its extension"):
        read_columns(_write(tmp_path / "data.csv.gz", b""))
    with pytest.raises(DataFileError, match="unknown data file format 'orc'"):
        read_columns(_write(tmp_path / "data.csv", b"a\n"), fmt="orc")


# --------------------------------------------------------------------------------------
# Parquet: fuzzing
# --------------------------------------------------------------------------------------


def _valid_parquet() -> bytes:
    buf = io.BytesIO()
    df = pd.DataFrame(
        {"i": [1, 2], "s": ["a", "b"], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    )
    table = pa.Table.from_pandas(df).append_column("nested", pa.array([{"a": [1]}, None]))
    pq.write_table(table, buf)
    return buf.getvalue()


VALID_PARQUET = _valid_parquet()
VALID_FOOTER_START = len(VALID_PARQUET) - 8 - int.from_bytes(VALID_PARQUET[-8:-4], "little")
CRAFTED_PARQUET = crafted_file(long_form=True, exotic=True)[0]


def assert_dict_or_data_file_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        columns = read_columns(path, fmt="parquet")
    except DataFileError:
        return
    assert isinstance(columns, dict)
    assert all(isinstance(k, str) and v in DTYPES for k, v in columns.items())


FUZZ_SETTINGS = settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def mutated(draw: st.DrawFn, base: bytes, footer_start: int) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(footer_start, len(data) - 1))
        action = draw(st.sampled_from(["set", "flip", "insert", "delete"]))
        if action == "set":
            data[pos] = draw(st.integers(0, 255))
        elif action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[pos : pos + draw(st.integers(1, 8))]
    if draw(st.booleans()):  # keep the trailer consistent so the damage reaches the decoder
        body = bytes(data[footer_start:-8])
        data[footer_start:] = body + len(body).to_bytes(4, "little") + b"PAR1"
    return bytes(data)


@FUZZ_SETTINGS
@given(data=mutated(VALID_PARQUET, VALID_FOOTER_START))
def test_fuzz_mutated_pyarrow_footer(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    assert_dict_or_data_file_error(tmp_path_factory.getbasetemp() / "fuzz1.parquet", data)


@FUZZ_SETTINGS
@given(data=mutated(CRAFTED_PARQUET, 4))
def test_fuzz_mutated_crafted_footer(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    assert_dict_or_data_file_error(tmp_path_factory.getbasetemp() / "fuzz2.parquet", data)


@FUZZ_SETTINGS
@given(cut=st.integers(0, len(VALID_PARQUET) - 1), from_end=st.booleans())
def test_fuzz_truncated(tmp_path_factory: pytest.TempPathFactory, cut: int, from_end: bool) -> None:
    data = VALID_PARQUET[:cut] if from_end else VALID_PARQUET[cut:]
    assert_dict_or_data_file_error(tmp_path_factory.getbasetemp() / "fuzz3.parquet", data)


@FUZZ_SETTINGS
@given(body=st.binary(max_size=512))
def test_fuzz_random_footer(tmp_path_factory: pytest.TempPathFactory, body: bytes) -> None:
    assert_dict_or_data_file_error(
        tmp_path_factory.getbasetemp() / "fuzz4.parquet", parquet_bytes(body)
    )


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.mark.parametrize(
    "values, expected",
    [
        (["1", "-2", "+3", " 4 "], "int64"),
        (["1", "", "2"], "int64"),
        ([str(-(2**63)), str(2**63 - 1)], "int64"),
        (["00000000000000000000000000042"], "int64"),
        ([str(2**63)], "float64"),
        (["1" * 5000], "float64"),
        (["1", "2.5"], "float64"),
        (["1e3", ".5", "5.", "-1.5E-3"], "float64"),
        (["NaN", "1", "-inf", "Infinity"], "float64"),
        (["true", "False", "TRUE"], "bool"),
        (["2024-01-01", "2024-02-29"], "date"),
        (["2024-01-01", "2024-01-01T00:00:00"], "unix_timestamp"),
        (["2024-01-01 12:30", "2024-01-01T12:30:59.123456Z"], "unix_timestamp"),
        (
            ["2024-06-30T23:59:60+05:30", "2024-01-01T00:00:00-0800", "2024-01-01t00:00:00z"],
            "unix_timestamp",
        ),
        ([""], "unknown"),
        (["", " ", ""], "unknown"),
        (["1", "x"], "string"),
        (["true", "1"], "string"),
        (["2024-01-01", "1"], "string"),
        (["2023-02-29"], "string"),
        (["2024-13-01"], "string"),
        (["2024-01-01T24:00:00"], "string"),
        (["2024-01-01T12:00:00+25:00"], "string"),
        (["2024-01-01T12"], "string"),
        (["20240101"], "int64"),
        (["0x10"], "string"),
        (["1_000"], "string"),
        (["١٢٣"], "string"),
        (["yes", "no"], "string"),
        (["1,5"], "string"),
    ],
)
def test_csv_inference(tmp_path: Path, values: list[str], expected: str) -> None:
    path = write_csv(tmp_path / "d.csv", [["col", "other"], *([v, "x"] for v in values)])
    assert read_columns(path) == {"col": expected, "other": "string"}


def test_csv_several_columns_keep_header_order(tmp_path: Path) -> None:
    rows = [["z", "a", "m", "名前"], ["1", "1.5", "true", "x"], ["2", "", "false", "y"]]
    columns = read_columns(write_csv(tmp_path / "d.csv", rows))
    assert list(columns.items()) == [
        ("z", "int64"),
        ("a", "float64"),
        ("m", "bool"),
        ("名前", "string"),
    ]


def test_csv_looks_only_at_sample_rows(tmp_path: Path) -> None:
    rows = [["n"], *([str(i)] for i in range(CSV_SAMPLE_ROWS)), ["not a number"]]
    assert read_columns(write_csv(tmp_path / "d.csv", rows)) == {"n": "int64"}
    rows.insert(CSV_SAMPLE_ROWS, ["1.5"])
    assert read_columns(write_csv(tmp_path / "d.csv", rows)) == {"n": "float64"}


def test_csv_header_only_and_short_rows(tmp_path: Path) -> None:
    assert read_columns(_write(tmp_path / "h.csv", b"a,b\n")) == {"a": "unknown", "b": "unknown"}
    assert read_columns(_write(tmp_path / "h.csv", b"a,b")) == {"a": "unknown", "b": "unknown"}
    assert read_columns(_write(tmp_path / "s.csv", b"a,b\n1\n\n2\n")) == {
        "a": "int64",
        "b": "unknown",
    }


def test_csv_bom_crlf_quotes_and_blank_lines(tmp_path: Path) -> None:
    data = (
        '\ufeff\r\n"id","note"\r\n1,"multi\r\nline, with comma"\r\n\r\n2,"say ""hi"""\r\n'.encode()
    )
    assert read_columns(_write(tmp_path / "excel.csv", data)) == {"id": "int64", "note": "string"}


def test_csv_with_pandas(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "i": [1, 2, None],
            "f": [1.5, None, 3.0],
            "b": [True, False, True],
            "t": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 00:00", None]),
            "d": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None],
            "s": ["a", "b", "c"],
        }
    )
    df.to_csv(tmp_path / "pd.csv")
    assert read_columns(tmp_path / "pd.csv") == {
        "": "int64",  # the unnamed index
        "i": "float64",  # pandas writes an int column with nulls as floats
        "f": "float64",
        "b": "bool",
        "t": "unix_timestamp",
        "d": "date",
        "s": "string",
    }


@pytest.mark.parametrize(
    "data, message, line, col",
    [
        (b"", "no header row", 1, None),
        (b"\n\n", "no header row", 1, None),
        (b"\xef\xbb\xbf", "no header row", 1, None),
        (b"a,b\n1,2\nx,\xe9t\xe9\n", "not UTF-8", 3, 3),
        (b"\xff\xfe" + "a,b\n".encode("utf-16-le"), "not UTF-8", 1, 1),
        (b"caf\xc3\xa9,\xc3\n", "not UTF-8", 1, 6),
        (b"a,b\n1,2\n1,2,3\n", "row has 3 fields but the header has 2", 3, None),
        (b"a,b,a\n", "duplicate column name 'a'", 1, None),
        (
            b'a\n"' + b"x" * 200_000 + b'"\n',
            "malformed CSV: field larger than field limit",
            2,
            None,
        ),
    ],
)
def test_csv_errors(tmp_path: Path, data: bytes, message: str, line: int, col: int | None) -> None:
    with pytest.raises(DataFileError, match=message) as info:
        read_columns(_write(tmp_path / "bad.csv", data))
    assert (info.value.line, info.value.col) == (line, col)
    assert str(info.value).startswith(f"line {line}")


def test_csv_format_argument(tmp_path: Path) -> None:
    assert read_columns(_write(tmp_path / "data.txt", b"x\n1\n"), fmt="csv") == {"x": "int64"}
    assert read_columns(_write(tmp_path / "DATA.CSV", b"x\ntrue\n")) == {"x": "bool"}


def test_data_file_error_is_a_value_error() -> None:
    err = DataFileError("bad", line=3, col=7)
    assert isinstance(err, ValueError)
    assert (err.message, err.line, err.col) == ("bad", 3, 7)
    assert str(err) == "line 3, column 7: bad"
    assert str(DataFileError("bad")) == "bad"


# --------------------------------------------------------------------------------------
# compatible
# --------------------------------------------------------------------------------------

ACCEPTED = {
    ("int64", "int32"),
    ("float64", "int32"),
    ("float64", "int64"),
    ("float64", "float32"),
    ("unix_timestamp", "date"),
}


@pytest.mark.parametrize("declared", sorted(DECLARABLE_DTYPES))
@pytest.mark.parametrize("actual", DTYPES)
def test_compatible(declared: str, actual: str) -> None:
    expected = actual in (declared, "unknown") or (declared, actual) in ACCEPTED
    assert compatible(declared, actual) is expected


def test_compatible_spot_checks() -> None:
    assert compatible("int64", "int32")
    assert not compatible("int32", "int64")
    assert not compatible("float32", "float64")
    assert not compatible("float32", "int32")
    assert not compatible("date", "unix_timestamp")
    assert not compatible("string", "bytes")
    assert compatible("bool", "unknown")


@pytest.mark.parametrize(
    "declared, actual", [("unknown", "int32"), ("float", "float64"), ("int64", "integer")]
)
def test_compatible_rejects_unknown_names(declared: str, actual: str) -> None:
    with pytest.raises(ValueError):
        compatible(declared, actual)


# --------------------------------------------------------------------------------------
# Stays light
# --------------------------------------------------------------------------------------


def test_import_does_not_pull_in_heavy_libraries(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", pa.table({"a": [1]}))
    code = (
        "import sys, mlspec.datafiles as d; "
        f"d.read_columns({str(path)!r}); "
        "print(sorted({'pyarrow', 'pandas', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- time_span: what validate knows of a time split's parts -------------------------------------


def _us(text: str) -> float:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) / dt.timedelta(microseconds=1)


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_time_span_of_parquet_comes_from_every_row_groups_statistics(tmp_path, unit):
    from mlspec.datafiles import time_span

    stamps = pd.to_datetime(["2024-03-01T12:00:00Z", None, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z",
                             "2024-12-31T23:59:59Z"], utc=True).as_unit(unit)
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"k": range(5), "ts": stamps}).to_parquet(path, row_group_size=2)  # three row groups
    assert time_span(path, None, "ts") == (_us("2024-01-01T00:00:00Z"), _us("2024-12-31T23:59:59Z"))
    assert time_span(path, "parquet", "missing") is None


def test_time_span_of_parquet_numbers_and_dates_and_without_statistics(tmp_path):
    from mlspec.datafiles import time_span

    table = pa.table({"secs": pa.array([1_704_067_200, 1_709_294_400], pa.int64()),
                      "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 3)], pa.date32()),
                      "text": pa.array(["2024-01-01", "2024-01-02"])})
    pq.write_table(table, tmp_path / "a.parquet")
    assert time_span(tmp_path / "a.parquet", None, "secs") == (1_704_067_200e6, 1_709_294_400e6)  # Unix seconds
    assert time_span(tmp_path / "a.parquet", None, "day") == (_us("2024-01-01T00:00:00Z"), _us("2024-01-03T00:00:00Z"))
    assert time_span(tmp_path / "a.parquet", None, "text") is None  # strings have no cheap, sure order
    pq.write_table(table, tmp_path / "b.parquet", write_statistics=False)
    assert time_span(tmp_path / "b.parquet", None, "secs") is None  # no statistics: unknown, not a guess


def test_time_span_of_csv_reads_iso_times_and_unix_seconds_as_the_pipeline_does(tmp_path):
    from mlspec.datafiles import time_span

    (tmp_path / "iso.csv").write_text("k,ts\n1,2024-03-01T12:00:00Z\n2,\n3,2024-01-01\n4,2024-02-01T01:00:00+01:00\n")
    assert time_span(tmp_path / "iso.csv", "csv", "ts") == (_us("2024-01-01T00:00:00Z"), _us("2024-03-01T12:00:00Z"))
    (tmp_path / "secs.csv").write_text("k,ts\n1,1704067200\n2,1709294400.5\n")
    assert time_span(tmp_path / "secs.csv", "csv", "ts") == (1_704_067_200e6, 1_709_294_400.5e6)
    (tmp_path / "mixed.csv").write_text("k,ts\n1,1704067200\n2,yesterday\n")
    assert time_span(tmp_path / "mixed.csv", "csv", "ts") is None
    (tmp_path / "empty.csv").write_text("k,ts\n1,\n")
    assert time_span(tmp_path / "empty.csv", "csv", "ts") is None

"""Column names and types of the local data files that ship next to a spec.

``mlspec validate`` checks that the columns a spec declares exist in the data file
it points at, with compatible types.  Validation must stay fast and dependency-free,
so this module reads the files with the standard library alone:

* **Parquet** -- only the footer is read.  The ``FileMetaData`` struct it holds is
  Thrift compact-protocol encoded; the small decoder below pulls out the schema and
  skips everything else, bounded so that a corrupt or malicious file raises
  :class:`DataFileError` instead of hanging or exhausting memory.
* **CSV** -- the header row names the columns; each column's type is inferred from
  the first :data:`CSV_SAMPLE_ROWS` data rows.

Column types are reported in one small vocabulary, :data:`DTYPES`; :func:`compatible`
decides whether a type declared in a spec accepts the type found in a file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "CSV_SAMPLE_ROWS",
    "DECLARABLE_DTYPES",
    "DTYPES",
    "DataFileError",
    "compatible",
    "read_columns",
]

#: Every logical column type :func:`read_columns` reports.
DTYPES: tuple[str, ...] = (
    "int32",
    "int64",
    "float32",
    "float64",
    "string",
    "bool",
    "bytes",
    "unix_timestamp",
    "date",
    "unknown",
)
#: The types a spec may declare: all of :data:`DTYPES` but ``unknown``.
DECLARABLE_DTYPES: frozenset[str] = frozenset(DTYPES) - {"unknown"}

#: How many CSV data rows type inference looks at.
CSV_SAMPLE_ROWS = 1000


class DataFileError(ValueError):
    """A data file that cannot be read: wrong format, truncated, corrupt or not UTF-8.

    ``line`` and ``col`` (1-based) locate the problem in a CSV file when known.
    """

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line}" + (f", column {self.col}" if self.col is not None else "")
        return f"{where}: {self.message}"


def read_columns(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, str]:
    """Return the columns of a Parquet or CSV file as ``{name: dtype}``, in file order.

    ``fmt`` is ``"parquet"`` or ``"csv"``; by default it follows the file extension
    (``.parquet``/``.pq`` or ``.csv``, case-insensitive).  Each dtype is one of
    :data:`DTYPES`; nested Parquet columns (structs, lists, maps) and columns whose
    type cannot be told are ``"unknown"``.  Raises :class:`DataFileError` for an
    unreadable file, including one that cannot be opened.
    """
    path = Path(path)
    if fmt is None:
        fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
        if fmt is None:
            raise DataFileError(
                f"cannot tell the format of {path.name!r} from its extension; "
                "expected .parquet, .pq or .csv"
            )
    reader = _READERS.get(fmt)
    if reader is None:
        raise DataFileError(f"unknown data file format {fmt!r}; expected 'parquet' or 'csv'")
    try:
        return reader(path)
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


#: For a declared dtype, the other file dtypes it accepts (lossless widenings).
_WIDENINGS: dict[str, frozenset[str]] = {
    "int64": frozenset({"int32"}),
    "float64": frozenset({"int32", "int64", "float32"}),
    "unix_timestamp": frozenset({"date"}),
}


def compatible(declared: str, actual: str) -> bool:
    """Whether a column declared as ``declared`` accepts a file column of type ``actual``.

    Exact matches and lossless widenings (int32 to int64; int32, int64 and float32
    to float64; date to unix_timestamp) are accepted, and so is ``unknown``, which
    cannot be checked.  Raises :class:`ValueError` for a name outside the vocabulary.
    """
    if declared not in DECLARABLE_DTYPES:
        raise ValueError(f"unknown declared dtype {declared!r}")
    if actual not in DTYPES:
        raise ValueError(f"unknown column dtype {actual!r}")
    return actual in (declared, "unknown") or actual in _WIDENINGS.get(declared, frozenset())


def _check_unique(name: str, columns: dict[str, str], line: int | None = None) -> None:
    if name in columns:
        raise DataFileError(f"duplicate column name {name!r}", line=line)


# --------------------------------------------------------------------------------------
# Parquet: the footer and the Thrift compact protocol
# --------------------------------------------------------------------------------------

_PARQUET_MAGIC = b"PAR1"
_ENCRYPTED_MAGIC = b"PARE"
_MAX_FOOTER_BYTES = 16 * 1024 * 1024
_MAX_DEPTH = 64
_MAX_CONTAINER = 1_000_000  # elements in one list/set/map, as parquet-cpp's default limit

# Thrift compact protocol type ids.  Booleans in a field header carry their value in
# the type (1 true, 2 false); inside lists, sets and maps they take one byte each.
_T_TRUE, _T_FALSE, _T_BYTE, _T_I16, _T_I32, _T_I64 = 1, 2, 3, 4, 5, 6
_T_DOUBLE, _T_BINARY, _T_LIST, _T_SET, _T_MAP, _T_STRUCT = 7, 8, 9, 10, 11, 12
_FIXED_WIDTH = {_T_TRUE: 1, _T_FALSE: 1, _T_BYTE: 1, _T_DOUBLE: 8}
_VARINT_TYPES = frozenset({_T_I16, _T_I32, _T_I64})

# parquet.thrift: Type (physical types).
_BOOLEAN, _INT32, _INT64, _INT96, _FLOAT, _DOUBLE, _BYTE_ARRAY, _FIXED_LEN_BYTE_ARRAY = range(8)
# parquet.thrift: FieldRepetitionType.
_REPEATED = 2
# parquet.thrift: ConvertedType (the legacy annotations).
_C_UTF8, _C_ENUM, _C_DECIMAL, _C_DATE = 0, 4, 5, 6
_C_TIME = frozenset({7, 8})  # TIME_MILLIS, TIME_MICROS
_C_TIMESTAMP = frozenset({9, 10})  # TIMESTAMP_MILLIS, TIMESTAMP_MICROS
_C_UINT_32, _C_JSON, _C_INTERVAL = 13, 19, 21
# parquet.thrift: LogicalType, a union; these are the ids of its members.
_L_STRING, _L_ENUM, _L_DECIMAL, _L_DATE, _L_TIME, _L_TIMESTAMP = 1, 4, 5, 6, 7, 8
_L_INTEGER, _L_NULL, _L_JSON, _L_FLOAT16 = 10, 11, 12, 15


class _CompactReader:
    """A cursor over Thrift compact-protocol bytes that never reads past the end."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def corrupt(self, what: str) -> DataFileError:
        return DataFileError(f"corrupt Parquet footer: {what} at footer byte {self._pos}")

    def _advance(self, n: int) -> int:
        start = self._pos
        if n < 0 or n > len(self._data) - start:
            raise self.corrupt("unexpected end of data")
        self._pos = start + n
        return start

    def byte(self) -> int:
        return self._data[self._advance(1)]

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return self._data[start : self._pos]

    def varint(self) -> int:
        """An unsigned LEB128 varint of at most 64 bits."""
        value = 0
        for shift in range(0, 64, 7):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
        raise self.corrupt("varint longer than 10 bytes")

    def zigzag(self) -> int:
        """A signed i16/i32/i64: a zigzag-encoded varint."""
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def i8(self) -> int:
        b = self.byte()
        return b - 256 if b > 127 else b

    def fields(self, depth: int) -> Iterator[tuple[int, int]]:
        """Yield ``(field id, type)`` for each field of a struct, up to its stop byte.

        The caller must consume (read or :meth:`skip_field`) each field's value
        before asking for the next header.
        """
        if depth > _MAX_DEPTH:
            raise self.corrupt(f"structs nested more than {_MAX_DEPTH} deep")
        field_id = 0
        while head := self.byte():
            delta = head >> 4
            # The short form adds a delta to the previous id; the long form (delta 0)
            # is followed by the id as a zigzag i16.
            field_id = field_id + delta if delta else self.zigzag()
            yield field_id, head & 0x0F

    def collection(self) -> tuple[int, int]:
        """Read a list or set header: ``(element type, size)``."""
        head = self.byte()
        size = head >> 4
        if size == 15:
            size = self.varint()
        self._check_size(size, 1, "list")  # every element takes a byte or more
        return head & 0x0F, size

    def _check_size(self, size: int, min_bytes: int, kind: str) -> None:
        if size > _MAX_CONTAINER:
            raise self.corrupt(f"{kind} of {size} elements is larger than {_MAX_CONTAINER}")
        if size * min_bytes > len(self._data) - self._pos:
            raise self.corrupt(f"{kind} of {size} elements overruns the footer")

    def skip_field(self, ftype: int, depth: int) -> None:
        """Skip a struct field's value; a boolean field's value is in its header."""
        if ftype not in (_T_TRUE, _T_FALSE):
            self.skip(ftype, depth)

    def skip(self, ttype: int, depth: int) -> None:
        """Skip one value of ``ttype`` as encoded inside a container."""
        if depth > _MAX_DEPTH:
            raise self.corrupt(f"values nested more than {_MAX_DEPTH} deep")
        if ttype in _FIXED_WIDTH:
            self._advance(_FIXED_WIDTH[ttype])
        elif ttype in _VARINT_TYPES:
            self.varint()
        elif ttype == _T_BINARY:
            self._advance(self.varint())
        elif ttype in (_T_LIST, _T_SET):
            etype, size = self.collection()
            if etype in _FIXED_WIDTH:
                self._advance(size * _FIXED_WIDTH[etype])
            else:
                for _ in range(size):
                    self.skip(etype, depth + 1)
        elif ttype == _T_MAP:
            size = self.varint()
            if size:
                self._check_size(size, 2, "map")
                kv_types = self.byte()
                for _ in range(size):
                    self.skip(kv_types >> 4, depth + 1)
                    self.skip(kv_types & 0x0F, depth + 1)
        elif ttype == _T_STRUCT:
            for _, ftype in self.fields(depth + 1):
                self.skip_field(ftype, depth + 1)
        else:
            raise self.corrupt(f"unknown Thrift type {ttype}")


@dataclass
class _SchemaElement:
    """The parts of a Parquet ``SchemaElement`` that decide a column's dtype."""

    name: str | None = None
    physical: int | None = None
    repetition: int | None = None
    num_children: int = 0
    converted: int | None = None
    logical: int | None = None  # the id of the LogicalType union member that is set
    int_bits: int | None = None  # LogicalType INTEGER: bitWidth
    int_signed: bool = True  # LogicalType INTEGER: isSigned
    time_unit: int | None = None  # LogicalType TIMESTAMP: the TimeUnit member (1 ms, 2 us, 3 ns)

    @property
    def is_group(self) -> bool:
        return self.physical is None or self.num_children > 0


def _read_parquet(path: Path) -> dict[str, str]:
    return _top_level_columns(_schema_elements(_CompactReader(_parquet_footer(path))))


def _parquet_footer(path: Path) -> bytes:
    """The footer's ``FileMetaData`` bytes, after checking the magic numbers and sizes."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < 12:  # magic + footer length + magic
            raise DataFileError(f"not a Parquet file: only {size} bytes long")
        f.seek(0)
        head = f.read(4)
        f.seek(size - 8)
        tail = f.read(8)
        if _ENCRYPTED_MAGIC in (head, tail[4:]):
            raise DataFileError("encrypted Parquet files are not supported")
        if head != _PARQUET_MAGIC:
            raise DataFileError("not a Parquet file: it does not start with PAR1")
        if tail[4:] != _PARQUET_MAGIC:
            raise DataFileError("truncated Parquet file: it does not end with PAR1")
        footer_len = int.from_bytes(tail[:4], "little")
        if footer_len > size - 12:
            raise DataFileError(
                f"truncated Parquet file: footer of {footer_len} bytes in a {size}-byte file"
            )
        if footer_len > _MAX_FOOTER_BYTES:
            raise DataFileError(f"Parquet footer of {footer_len} bytes is too large to read")
        f.seek(size - 8 - footer_len)
        footer = f.read(footer_len)
    if len(footer) != footer_len:
        raise DataFileError("truncated Parquet file: footer cut short")
    return footer


def _schema_elements(r: _CompactReader) -> Iterator[_SchemaElement]:
    """Read ``FileMetaData`` up to its field 2, the flattened schema tree, lazily.

    The elements are yielded one by one, so that those of nested columns are
    dropped as soon as they are passed; the rest of the footer is never read.
    """
    for field_id, ftype in r.fields(0):
        if field_id == 2 and ftype == _T_LIST:
            etype, size = r.collection()
            if etype != _T_STRUCT:
                raise r.corrupt("schema is not a list of structs")
            for _ in range(size):
                yield _read_schema_element(r)
            return
        r.skip_field(ftype, 0)
    raise r.corrupt("no schema")


def _read_schema_element(r: _CompactReader) -> _SchemaElement:
    el = _SchemaElement()
    for field_id, ftype in r.fields(1):
        if ftype == _T_I32 and field_id in (1, 3, 5, 6):
            value = r.zigzag()
            if field_id == 1:
                el.physical = value
            elif field_id == 3:
                el.repetition = value
            elif field_id == 5:
                if value < 0:
                    raise r.corrupt(f"negative num_children {value}")
                el.num_children = value
            else:
                el.converted = value
        elif field_id == 4 and ftype == _T_BINARY:
            raw = r.take(r.varint())
            try:
                el.name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise r.corrupt("column name is not UTF-8") from None
        elif field_id == 10 and ftype == _T_STRUCT:
            _read_logical_type(r, el)
        else:
            r.skip_field(ftype, 1)
    return el


def _read_logical_type(r: _CompactReader, el: _SchemaElement) -> None:
    for member, ftype in r.fields(2):
        if ftype != _T_STRUCT:
            r.skip_field(ftype, 2)
            continue
        el.logical = member
        if member == _L_TIMESTAMP:
            for field_id, ttype in r.fields(3):  # TimestampType: 2 is the unit, a union of empty structs
                if field_id == 2 and ttype == _T_STRUCT:
                    for unit, utype in r.fields(4):
                        el.time_unit = unit
                        r.skip_field(utype, 4)
                else:
                    r.skip_field(ttype, 3)
            continue
        if member != _L_INTEGER:
            r.skip(_T_STRUCT, 2)
            continue
        for field_id, itype in r.fields(3):
            if field_id == 1 and itype == _T_BYTE:
                el.int_bits = r.i8()
            elif field_id == 2 and itype in (_T_TRUE, _T_FALSE):
                el.int_signed = itype == _T_TRUE
            else:
                r.skip_field(itype, 3)


def _top_level_columns(elements: Iterator[_SchemaElement]) -> dict[str, str]:
    """Map the root's children to dtypes, passing over the subtrees of groups."""
    root = next(elements, None)
    if root is None:
        raise DataFileError("corrupt Parquet footer: empty schema")
    columns: dict[str, str] = {}
    for _ in range(root.num_children):
        el = next(elements, None)
        if el is None:
            raise DataFileError("corrupt Parquet footer: schema has fewer elements than declared")
        if el.name is None:
            raise DataFileError("corrupt Parquet footer: schema element without a name")
        _check_unique(el.name, columns)
        columns[el.name] = "unknown" if el.is_group else _parquet_dtype(el)
        pending = el.num_children  # descendants of this column still to pass
        while pending:
            descendant = next(elements, None)
            if descendant is None:
                raise DataFileError("corrupt Parquet footer: schema tree is cut short")
            pending += descendant.num_children - 1
    if next(elements, None) is not None:
        raise DataFileError("corrupt Parquet footer: schema has more elements than declared")
    return columns


_PHYSICAL_DTYPES = {
    _BOOLEAN: "bool",
    _INT96: "unix_timestamp",  # the deprecated Impala/Spark timestamp
    _FLOAT: "float32",
    _DOUBLE: "float64",
}


def _parquet_dtype(el: _SchemaElement) -> str:
    """The dtype of a primitive (non-group) column."""
    physical = el.physical
    if physical is None or el.repetition == _REPEATED:  # a bare repeated field is a list
        return "unknown"
    logical, converted = el.logical, el.converted
    if logical == _L_DECIMAL or converted == _C_DECIMAL:
        return "float64"
    if physical in (_INT32, _INT64):
        if logical == _L_DATE or converted == _C_DATE:
            return "date"
        if logical == _L_TIMESTAMP or converted in _C_TIMESTAMP:
            return "unix_timestamp"
        if logical in (_L_TIME, _L_NULL) or converted in _C_TIME:
            return "unknown"
        unsigned_32 = (logical == _L_INTEGER and el.int_bits == 32 and not el.int_signed) or (
            converted == _C_UINT_32
        )
        return "int32" if physical == _INT32 and not unsigned_32 else "int64"
    if physical in (_BYTE_ARRAY, _FIXED_LEN_BYTE_ARRAY):
        if logical in (_L_STRING, _L_ENUM, _L_JSON) or converted in (_C_UTF8, _C_ENUM, _C_JSON):
            return "string"
        if logical == _L_FLOAT16:
            return "float32"
        if logical == _L_NULL or converted == _C_INTERVAL:
            return "unknown"
        return "bytes"
    return _PHYSICAL_DTYPES.get(physical, "unknown")


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------

_MAX_CSV_LINE_BYTES = 16 * 1024 * 1024

# Inference keeps, per column, the set of types every value seen so far fits.
_K_INT, _K_FLOAT, _K_BOOL, _K_DATE, _K_TIMESTAMP = 1, 2, 4, 8, 16
_ALL_KINDS = _K_INT | _K_FLOAT | _K_BOOL | _K_DATE | _K_TIMESTAMP
_KIND_DTYPES = (  # most specific first
    (_K_INT, "int64"),
    (_K_FLOAT, "float64"),
    (_K_BOOL, "bool"),
    (_K_DATE, "date"),
    (_K_TIMESTAMP, "unix_timestamp"),
)
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)",
    re.IGNORECASE,
)
_DATETIME_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.[0-9]+)?)?"
    r"(?:Z|[+-](?P<tzh>[0-9]{2}):?(?P<tzm>[0-9]{2}))?)?",
    re.IGNORECASE,
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _read_csv(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        reader = csv.reader(_utf8_lines(f))
        try:
            header = next((row for row in reader if row), None)
            if header is None:
                raise DataFileError("empty CSV file: no header row", line=1)
            columns: dict[str, str] = {}
            for name in header:
                _check_unique(name, columns, line=reader.line_num)
                columns[name] = "unknown"
            kinds = [_ALL_KINDS] * len(header)
            seen = [False] * len(header)
            classified: dict[str, int] = {}  # value -> _classify(value): ids, flags and dates repeat
            rows = 0
            for row in reader:
                if not row:
                    continue
                if len(row) > len(header):
                    raise DataFileError(
                        f"row has {len(row)} fields but the header has {len(header)}",
                        line=reader.line_num,
                    )
                for i, cell in enumerate(row):
                    value = cell.strip()
                    if value and kinds[i]:
                        seen[i] = True
                        kind = classified.get(value)
                        if kind is None:
                            kind = classified[value] = _classify(value)
                        kinds[i] &= kind
                rows += 1
                if rows == CSV_SAMPLE_ROWS:
                    break
        except csv.Error as exc:
            raise DataFileError(f"malformed CSV: {exc}", line=reader.line_num) from None
    for name, kind, was_seen in zip(header, kinds, seen, strict=True):
        if was_seen:
            columns[name] = next((dtype for bit, dtype in _KIND_DTYPES if kind & bit), "string")
    return columns


def _utf8_lines(f: IO[bytes]) -> Iterator[str]:
    """Decode a binary file line by line, locating bad UTF-8; strip a leading BOM."""
    line_no = 0
    while raw := f.readline(_MAX_CSV_LINE_BYTES + 1):
        line_no += 1
        if len(raw) > _MAX_CSV_LINE_BYTES:
            raise DataFileError(f"line longer than {_MAX_CSV_LINE_BYTES} bytes", line=line_no)
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            col = len(raw[: exc.start].decode("utf-8")) + 1
            raise DataFileError("file is not UTF-8 encoded", line=line_no, col=col) from None


def _classify(value: str) -> int:
    """The inference kinds a non-empty, stripped CSV value fits."""
    if _INT_RE.fullmatch(value):
        # Leading zeros aside, an int64 has at most 19 digits; checking the length
        # first also keeps int() off huge strings.
        sign = "-" if value[0] == "-" else ""
        digits = value.lstrip("+-").lstrip("0") or "0"
        fits = len(digits) <= 19 and _INT64_MIN <= int(sign + digits) <= _INT64_MAX
        return _K_INT | _K_FLOAT if fits else _K_FLOAT
    if _FLOAT_RE.fullmatch(value):
        return _K_FLOAT
    if value.lower() in ("true", "false"):
        return _K_BOOL
    m = _DATETIME_RE.fullmatch(value)
    if m is None or not _valid_datetime(m):
        return 0
    return _K_TIMESTAMP if m["h"] else _K_DATE | _K_TIMESTAMP


def _valid_datetime(m: re.Match[str]) -> bool:
    try:
        _dt.date(int(m["y"]), int(m["mo"]), int(m["d"]))
    except ValueError:
        return False
    limits = (("h", 23), ("mi", 59), ("s", 60), ("tzh", 23), ("tzm", 59))  # 60: leap second
    return all(m[group] is None or int(m[group]) <= limit for group, limit in limits)


_FORMAT_BY_SUFFIX = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_READERS: dict[str, Callable[[Path], dict[str, str]]] = {
    "parquet": _read_parquet,
    "csv": _read_csv,
}


# --------------------------------------------------------------------------------------
# time spans
# --------------------------------------------------------------------------------------

#: Microseconds per unit of a Parquet timestamp: TimeUnit MILLIS, MICROS, NANOS; the legacy
#: ConvertedType TIMESTAMP_MILLIS (9), TIMESTAMP_MICROS (10).
_UNIT_US = {1: 1000.0, 2: 1.0, 3: 0.001}
_CONVERTED_UNIT = {9: 1, 10: 2}
_US_PER_DAY = 86_400_000_000


def time_span(path: str | os.PathLike[str], fmt: str | None, column: str) -> tuple[float, float] | None:
    """The earliest and latest non-null time in ``column``, as microseconds since the epoch
    (UTC), read as the pipeline's ingest step reads times: numbers are Unix seconds, strings
    ISO 8601 (naive means UTC).  None when that cannot be told cheaply and surely: a Parquet
    file without min/max statistics for the column in every row group, an INT96 column, a
    CSV value that is neither, no value at all.  Parquet: the footer's statistics alone;
    CSV: one pass over the column with the standard library."""
    path = Path(path)
    fmt = fmt or _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    try:
        if fmt == "parquet":
            return _parquet_span(_parquet_footer(path), column)
        if fmt == "csv":
            return _csv_span(path, column)
    except (OSError, csv.Error, ValueError):  # DataFileError is a ValueError: read_columns reports those
        return None
    return None


def _parquet_span(footer: bytes, column: str) -> tuple[float, float] | None:
    import struct

    r = _CompactReader(footer)
    element: _SchemaElement | None = None
    lows: list[float] = []
    highs: list[float] = []
    groups = 0
    for field_id, ftype in r.fields(0):
        if field_id == 2 and ftype == _T_LIST:
            _, size = r.collection()
            elements = [_read_schema_element(r) for _ in range(size)]
            element = next((e for e in elements[1:] if e.name == column and not e.is_group), None)
        elif field_id == 4 and ftype == _T_LIST and element is not None:
            _, groups = r.collection()
            for _ in range(groups):
                span = _row_group_span(r, column)
                if span is None:
                    return None
                lows.append(span[0])
                highs.append(span[1])
        else:
            r.skip_field(ftype, 0)
    if element is None or not groups or element.physical not in (_INT32, _INT64, _FLOAT, _DOUBLE):
        return None
    if element.physical in (_FLOAT, _DOUBLE):
        fmt_, scale = ("<f" if element.physical == _FLOAT else "<d"), 1_000_000.0  # Unix seconds
    elif element.logical == _L_DATE or element.converted == _C_DATE:
        fmt_, scale = "<i", float(_US_PER_DAY)
    elif element.logical == _L_TIMESTAMP or element.converted in _C_TIMESTAMP:
        unit = element.time_unit if element.logical == _L_TIMESTAMP else _CONVERTED_UNIT[element.converted]
        if unit not in _UNIT_US:
            return None
        fmt_, scale = ("<i" if element.physical == _INT32 else "<q"), _UNIT_US[unit]
    elif element.logical is None and element.converted is None:  # a plain integer: Unix seconds
        fmt_, scale = ("<i" if element.physical == _INT32 else "<q"), 1_000_000.0
    else:
        return None
    width = struct.calcsize(fmt_)
    if any(len(v) != width for v in lows + highs):
        return None
    low = min(struct.unpack(fmt_, v)[0] for v in lows) * scale
    high = max(struct.unpack(fmt_, v)[0] for v in highs) * scale
    return low, high


def _row_group_span(r: _CompactReader, column: str) -> tuple[bytes, bytes] | None:
    """The plain-encoded min and max of ``column`` in one ``RowGroup`` (None: no statistics)."""
    found: tuple[bytes, bytes] | None = None
    for field_id, ftype in r.fields(1):
        if field_id != 1 or ftype != _T_LIST:
            r.skip_field(ftype, 1)
            continue
        _, chunks = r.collection()
        for _ in range(chunks):
            for chunk_field, ctype in r.fields(2):
                if chunk_field != 3 or ctype != _T_STRUCT:  # ColumnChunk.meta_data
                    r.skip_field(ctype, 2)
                    continue
                path: list[str] = []
                stats: dict[int, bytes] = {}
                for meta_field, mtype in r.fields(3):
                    if meta_field == 3 and mtype == _T_LIST:  # path_in_schema
                        _, parts = r.collection()
                        path = [r.take(r.varint()).decode("utf-8", "replace") for _ in range(parts)]
                    elif meta_field == 12 and mtype == _T_STRUCT:  # Statistics
                        for stat_field, stype in r.fields(4):
                            if stat_field in (1, 2, 5, 6) and stype == _T_BINARY:
                                stats[stat_field] = r.take(r.varint())
                            else:
                                r.skip_field(stype, 4)
                    else:
                        r.skip_field(mtype, 3)
                if path == [column]:
                    low, high = stats.get(6, stats.get(2)), stats.get(5, stats.get(1))  # min_value/max_value first
                    found = (low, high) if low is not None and high is not None else None
    return found


def _csv_span(path: Path, column: str) -> tuple[float, float] | None:
    with path.open("rb") as f:
        reader = csv.reader(_utf8_lines(f))
        header = next((row for row in reader if row), None)
        if header is None or column not in header:
            return None
        index = header.index(column)
        values = [row[index].strip() for row in reader if len(row) > index and row[index].strip()]
    if not values:
        return None
    if all(_FLOAT_RE.fullmatch(v) for v in values):  # pandas reads an all-number column as numbers: seconds
        seconds = [float(v) for v in values]
        if any(x != x or x in (float("inf"), float("-inf")) for x in seconds):
            return None
        return min(seconds) * 1_000_000.0, max(seconds) * 1_000_000.0
    stamps = []
    for v in values:
        m = _DATETIME_RE.fullmatch(v)
        if m is None or not _valid_datetime(m):
            return None
        text = v[:-1] + "+00:00" if v[-1] in "zZ" else v
        moment = _dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        stamps.append(moment)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return ((min(stamps) - epoch) / _dt.timedelta(microseconds=1), (max(stamps) - epoch) / _dt.timedelta(microseconds=1))

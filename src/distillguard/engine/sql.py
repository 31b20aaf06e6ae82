"""DuckDB SQL -> Spark SQL, with every construct whose meaning would change reported as an error.

The features, attribution and report stages are written once, as DuckDB SQL (``features/stats.py``'s
``SUMS``/``DISTINCTS``, ``attribution/*.py``). The Spark engine runs those same strings: each statement is
parsed with SQLGlot's DuckDB dialect and rewritten here into Spark SQL. SQLGlot's own DuckDB -> Spark
translation is a starting point, not a guarantee: out of the box it turns ``epoch_ms(ts)`` into
``TIMESTAMP_MILLIS(ts)`` (the inverse function), drops the ``ORDER BY`` of ``list(x ORDER BY x)``, keeps
DuckDB's ``UNPIVOT ... INTO NAME`` form and ``len(list)``, and maps ``hash()`` onto Spark's unrelated
Murmur3. Each rule below closes one such gap; what no rule covers raises :class:`UnsupportedSQL`
instead of running with another meaning. ``tests/test_spark.py`` runs every rule through both engines.

Rules (DuckDB meaning -> Spark expression):

* ``a / b`` is always DOUBLE division in DuckDB -> both operands cast to DOUBLE (Spark keeps decimals);
* casts to an integer type round (DuckDB: DOUBLE half-to-even, DECIMAL half-away-from-zero) -> ``bround`` /
  ``round`` first; Spark truncates. A cast whose operand type cannot be told is an error;
* unsigned types: ``UBIGINT`` -> ``DECIMAL(20,0)`` (what Spark's Parquet reader makes of UINT64 columns such as
  the ``tpl`` fingerprint, so values and their text stay exact), ``UINTEGER`` -> ``BIGINT``;
* ``x >> n``: ``x DIV 2^n`` for unsigned values, ``shiftright`` for signed ones;
* ``md5_number_upper(s)`` (first 8 bytes of the MD5, little-endian) -> Spark's hex ``md5`` byte-swapped and
  converted with ``conv``; ``md5_number_upper(s) >> 32`` (the sketch hash of ``features.stats``) reads 4 bytes;
* ``hash(...)`` (DuckDB's own 64-bit hash) -> a vectorised Arrow UDF that evaluates DuckDB's ``hash`` on the
  executors (:mod:`distillguard.engine.spark.udfs`): no Spark function has its values;
* ``min(x, k)`` (the k smallest, sorted) -> ``slice(array_sort(collect_list(x)), 1, k)``; where it is the only
  aggregate of a grouped select (the distinct-count sketches), the select first keeps the k first rows per group
  by ``row_number()`` ordered by ``x`` (Spark's window group limit takes them before the shuffle), so no group
  ever collects more than k values: ``collect_list`` alone holds every value of a group, and on the heaviest
  accounts at 16M exchanges that ran Spark out of aggregation memory;
* ``list(x ORDER BY x)`` -> ``array_sort(collect_list(x))``; any other ordered list is an error;
* ``epoch(ts)`` -> ``unix_micros(ts) / 1e6`` (DOUBLE, not Spark's truncating ``unix_timestamp``);
  ``epoch_ms(ts)`` -> ``unix_millis(ts)`` (``epoch_ms(int)`` -> ``timestamp_millis``);
* ``len(list)`` -> ``size``; ``list_has_any`` -> ``arrays_overlap``; ``list_intersect`` -> ``array_intersect``;
  ``list_extract`` / ``l[i]`` (1-based) -> ``element_at``; ``list_slice`` / ``l[a:b]`` (inclusive) -> ``slice``;
* ``count(DISTINCT x) OVER (...)`` -> ``size(collect_set(x) OVER (...))``;
* ``UNPIVOT t ON cols INTO NAME n VALUE v`` -> ``t UNPIVOT (v FOR n IN (cols))``;
* ``range(n) r(j)`` in ``FROM`` -> Spark's ``range`` table function;
* ``regexp_replace(s, p, r)`` without ``'g'`` replaces the first match only: allowed when the pattern is
  anchored (one match at most), an error otherwise; ``'g'`` is Spark's default;
* ``read_parquet(...)`` -> a relation the caller registers (:func:`to_spark`'s ``relations``).

Known gaps that are *not* detectable from the text and are therefore settled by configuration or by the
stages' own conventions (docs/spark.md): both engines run in UTC (``date_trunc``, ``epoch``); Spark runs
with ``spark.sql.ansi.enabled=false`` (out-of-range ``element_at`` is NULL as in DuckDB); DuckDB's
``list()`` keeps NULLs where ``collect_list`` drops them (the stages filter NULLs first); double division by
zero is ``inf`` in DuckDB and NULL in Spark; regular expressions are RE2 in DuckDB and Java's in Spark
(the stages use the common subset: classes, anchors, quantifiers).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel

from distillguard.errors import DistillguardError

# the value types the rules tell apart
BOOL, INT, UINT, FLOAT, DECIMAL, STRING, TIMESTAMP, DATE, ARRAY, NULL, UNKNOWN = (
    "bool", "int", "uint", "float", "decimal", "string", "timestamp", "date", "array", "null", "unknown")
_NUMERIC = (INT, UINT, FLOAT, DECIMAL, BOOL)
_INTEGER_TYPES = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
                  exp.DataType.Type.BIGINT, exp.DataType.Type.UTINYINT, exp.DataType.Type.USMALLINT,
                  exp.DataType.Type.UINT, exp.DataType.Type.UBIGINT, exp.DataType.Type.INT128,
                  exp.DataType.Type.UINT128, exp.DataType.Type.HUGEINT if hasattr(exp.DataType.Type, "HUGEINT")
                  else exp.DataType.Type.INT128}
_UNSIGNED_TYPES = {exp.DataType.Type.UTINYINT, exp.DataType.Type.USMALLINT, exp.DataType.Type.UINT,
                   exp.DataType.Type.UBIGINT, exp.DataType.Type.UINT128}
_TEXT_TYPES = {exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.CHAR,
               exp.DataType.Type.NVARCHAR}
# DuckDB SET options that only tune DuckDB itself (threads, memory, spill directory, progress bar)
IGNORED_SETTINGS = frozenset({"enable_progress_bar", "threads", "memory_limit", "temp_directory",
                              "preserve_insertion_order"})
DUCKDB_HASH_UDF = "dg_duckdb_hash_{n}"  # registered per arity by distillguard.engine.spark.udfs


class UnsupportedSQL(DistillguardError, ValueError):
    """A DuckDB construct with no Spark translation of the same meaning."""

    def __init__(self, construct: str, sql: str = "") -> None:
        self.construct = construct
        self.sql = sql
        where = f"\n  in: {' '.join(sql.split())[:400]}" if sql else ""
        super().__init__(f"no Spark translation with the same meaning: {construct}{where}")


class _Spark(Spark):
    """Spark output with DuckDB's unsigned and 128-bit integer types mapped onto exact Spark types."""

    class Generator(Spark.Generator):  # type: ignore[valid-type,misc]  # declared as a class attribute
        TYPE_MAPPING = {
            **Spark.Generator.TYPE_MAPPING,
            exp.DataType.Type.UBIGINT: "DECIMAL(20, 0)",
            exp.DataType.Type.UINT: "BIGINT",
            exp.DataType.Type.USMALLINT: "INT",
            exp.DataType.Type.UTINYINT: "SMALLINT",
            exp.DataType.Type.INT128: "DECIMAL(38, 0)",
            exp.DataType.Type.UINT128: "DECIMAL(38, 0)",
        }


@dataclass
class Translation:
    """A Spark statement and what it needs registered: DuckDB-evaluated UDFs by arity."""

    expression: exp.Expression
    hash_arities: set[int] = field(default_factory=set)

    @property
    def sql(self) -> str:
        return self.expression.sql(dialect=_Spark, unsupported_level=ErrorLevel.RAISE)


def parse(sql: str) -> exp.Expression:
    """One DuckDB statement as a SQLGlot tree (errors in the text raise)."""
    statements = [s for s in sqlglot.parse(sql, read=DuckDB, error_level=ErrorLevel.RAISE) if s is not None]
    if len(statements) != 1:
        raise UnsupportedSQL(f"{len(statements)} statements in one call", sql)
    return cast(exp.Expression, statements[0])


# ---- types --------------------------------------------------------------------------------------------------

def _datatype_kind(dt: exp.DataType) -> str:
    t = dt.this
    if t in _UNSIGNED_TYPES:
        return UINT
    if t in _INTEGER_TYPES:
        return INT
    if t in (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT):
        return FLOAT
    if t == exp.DataType.Type.DECIMAL:
        return DECIMAL
    if t == exp.DataType.Type.BOOLEAN:
        return BOOL
    if t in _TEXT_TYPES:
        return STRING
    if t in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ,
             exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME):
        return TIMESTAMP
    if t == exp.DataType.Type.DATE:
        return DATE
    if t == exp.DataType.Type.ARRAY or dt.args.get("nested"):
        return ARRAY
    return UNKNOWN


def _combine(kinds: list[str]) -> str:
    kinds = [k for k in kinds if k != NULL]
    if not kinds or UNKNOWN in kinds:
        return UNKNOWN
    for kind in (FLOAT, DECIMAL, UINT, INT):
        if kind in kinds and all(k in _NUMERIC for k in kinds):
            return kind
    return kinds[0] if all(k == kinds[0] for k in kinds) else UNKNOWN


_BOOLEAN_NODES = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.ArrayOverlaps, exp.Contains,
                  exp.RegexpLike, exp.StartsWith)
_STRING_NODES = (exp.Lower, exp.Upper, exp.Concat, exp.ConcatWs, exp.Substring, exp.Left, exp.Right, exp.Trim,
                 exp.RegexpReplace, exp.RegexpExtract, exp.ArrayToString, exp.MD5, exp.Replace, exp.DPipe)
_FLOAT_NODES = (exp.Ln, exp.Log, exp.Exp, exp.Sqrt, exp.Pow, exp.Div, exp.Avg, exp.Median, exp.Quantile,
                exp.Stddev, exp.Variance, exp.TimeToUnix)
_SAME_AS_ARG = (exp.Paren, exp.Neg, exp.Abs, exp.Min, exp.Max, exp.AnyValue, exp.IgnoreNulls, exp.RespectNulls,
                exp.Lag, exp.Lead, exp.First, exp.Last, exp.ArgMin, exp.ArgMax, exp.Window, exp.Alias, exp.Nullif,
                exp.Round, exp.Floor, exp.Ceil, exp.Filter, exp.Distinct)


def merge_kinds(found: set[str]) -> str:
    """One kind for a name several relations give: signed and unsigned integers merge (text and casts agree)."""
    found = {k for k in found if k != UNKNOWN} or {UNKNOWN}
    if len(found) == 1:
        return next(iter(found))
    if found <= {INT, UINT}:
        return INT
    return UNKNOWN


class _Types:
    """Best-effort value types of a statement's expressions: columns of the relations it reads (a qualified
    column by its relation), else select aliases of the statement, and function results."""

    def __init__(self, tree: exp.Expression, tables: Mapping[str, Mapping[str, str]]) -> None:
        tables = {t.lower(): {c.lower(): k for c, k in cols.items()} for t, cols in tables.items()}
        self.by_alias: dict[str, Mapping[str, str]] = {}
        base: dict[str, set[str]] = {}
        for table in tree.find_all(exp.Table):
            cols = tables.get(table.name.lower())
            if cols is None:
                continue
            self.by_alias[table.alias_or_name.lower()] = cols
            for name, kind in cols.items():
                base.setdefault(name, set()).add(kind)
        columns = {name: merge_kinds(kinds) for name, kinds in base.items()}
        self.names: dict[str, str] = dict(columns)
        for _ in range(3):  # aliases of aliases (CTE chains) settle in a few passes
            found: dict[str, set[str]] = {}
            for alias in tree.find_all(exp.Alias):
                found.setdefault(alias.alias.lower(), set()).add(self.of(alias.this))
            for series in tree.find_all(exp.GenerateSeries):  # range(n) r(j): j is BIGINT
                table_alias = series.parent.args.get("alias") if isinstance(series.parent, exp.Table) else None
                for col in (table_alias.args.get("columns") or []) if table_alias is not None else []:
                    found.setdefault(col.name.lower(), set()).add(INT)
            merged = dict(columns)  # a relation's column wins over a select alias of the same name
            for name, kinds in found.items():
                if name not in merged:
                    merged[name] = merge_kinds(kinds)
            if merged == self.names:
                break
            self.names = merged

    def of(self, node: exp.Expression | None) -> str:  # noqa: C901 - one dispatch table
        if node is None:
            return UNKNOWN
        if isinstance(node, exp.Literal):
            if node.is_string:
                return STRING
            return DECIMAL if any(c in node.this for c in ".eE") else INT
        if isinstance(node, exp.Null):
            return NULL
        if isinstance(node, _BOOLEAN_NODES):
            return BOOL
        if isinstance(node, exp.Column):
            name = node.name.lower()
            relation = self.by_alias.get(node.table.lower()) if node.table else None
            if relation is not None and name in relation:
                return relation[name]
            return self.names.get(name, UNKNOWN)
        if isinstance(node, (exp.Cast, exp.TryCast)):
            return _datatype_kind(node.to)
        if isinstance(node, (exp.Count, exp.RowNumber, exp.Rank, exp.DenseRank, exp.ArraySize, exp.Length,
                             exp.IntDiv)):
            return INT if not isinstance(node, exp.IntDiv) else _combine([self.of(node.this),
                                                                          self.of(node.expression)])
        if isinstance(node, _FLOAT_NODES):
            return FLOAT
        if isinstance(node, exp.UnixToTime):
            return INT if self.of(node.this) == TIMESTAMP else TIMESTAMP
        if isinstance(node, _STRING_NODES):
            return STRING
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
            return _combine([self.of(node.this), self.of(node.expression)])
        if isinstance(node, exp.BitwiseRightShift):
            return self.of(node.this)
        if isinstance(node, exp.Sum):
            inner = self.of(node.this)
            return INT if inner == BOOL else inner
        if isinstance(node, _SAME_AS_ARG):
            return self.of(node.this)
        if isinstance(node, (exp.Coalesce, exp.Greatest, exp.Least)):
            return _combine([self.of(node.this), *(self.of(e) for e in node.expressions)])
        if isinstance(node, exp.Case):
            return _combine([self.of(i.args.get("true")) for i in node.args.get("ifs") or []]
                            + ([self.of(node.args["default"])] if node.args.get("default") else []))
        if isinstance(node, exp.If):
            return _combine([self.of(node.args.get("true")), self.of(node.args.get("false"))])
        if isinstance(node, (exp.Array, exp.ArrayAgg, exp.Split, exp.ArrayIntersect, exp.ArraySort)):
            return ARRAY
        if isinstance(node, (exp.Unnest, exp.Explode)):
            inner = node.expressions[0] if isinstance(node, exp.Unnest) else node.this
            return self.of(inner.expressions[0]) if isinstance(inner, exp.Array) and inner.expressions else UNKNOWN
        if isinstance(node, (exp.TimestampTrunc, exp.DateTrunc, exp.CurrentTimestamp)):
            return TIMESTAMP
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            if name in ("md5_number_upper", "md5_number_lower", "hash"):
                return UINT
            if name.startswith("list_") and name not in ("list_extract", "list_has_any", "list_contains"):
                return ARRAY
        return UNKNOWN


# ---- rewriting ----------------------------------------------------------------------------------------------

def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _lit(value: int | str) -> exp.Literal:
    return exp.Literal.string(value) if isinstance(value, str) else cast(exp.Literal, exp.Literal.number(value))


def _int_literal(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.lstrip("-").isdigit():
        return int(node.this)
    if isinstance(node, exp.Neg):
        inner = _int_literal(node.this)
        return None if inner is None else -inner
    return None


def _md5_le_hex(value: exp.Expression, start: int, chars: int) -> exp.Expression:
    """Hex of MD5 bytes [start/2, (start+chars)/2) in little-endian order (DuckDB's md5_number_* byte order)."""
    window = _fn("substr", _fn("md5", value.copy()), _lit(start + 1), _lit(chars))
    pairs = _fn("regexp_extract_all", window, _lit(".."), _lit(0))
    return _fn("array_join", _fn("reverse", pairs), _lit(""))


def _md5_upper(value: exp.Expression) -> exp.Expression:
    """``md5_number_upper(v)``: the first 8 bytes of MD5(v) as a little-endian unsigned 64-bit number."""
    number = _fn("conv", _md5_le_hex(value, 0, 16), _lit(16), _lit(10))
    return exp.Cast(this=number, to=exp.DataType.build("DECIMAL(20, 0)"))


def _md5_upper_shift32(value: exp.Expression) -> exp.Expression:
    """``md5_number_upper(v) >> 32``: MD5 bytes 4..7, little-endian (the sketch hash of features.stats)."""
    number = _fn("conv", _md5_le_hex(value, 8, 8), _lit(16), _lit(10))
    return exp.Cast(this=number, to=exp.DataType.build("BIGINT"))


_RANK = "__dg_rank"


def _bound_smallest(select: exp.Select) -> exp.Select:
    """``SELECT keys, min(x, k) ... GROUP BY keys`` -> the same select over the k first rows of each group by
    ``x`` (see the module docstring). Left as it is unless ``min(x, k)`` (one ``x``, one constant ``k``) is the
    select's only aggregate and the group keys are plain unqualified columns: the bounded form is then exact
    (ties and NULLs included: NULLs sort last and ``min``/``collect_list`` skip them); other selects keep the
    unbounded form, which has the same meaning."""
    group = select.args.get("group")
    source = select.args.get("from_")
    if group is None or source is None or select.args.get("joins") or select.args.get("having") is not None:
        return select
    keys = group.expressions
    if not keys or not all(isinstance(key, exp.Column) and not key.table for key in keys):
        return select
    aggregates = [a for e in select.expressions for a in e.find_all(exp.AggFunc)]
    smallest = [a for a in aggregates if isinstance(a, exp.Min) and a.args.get("count") is not None]
    if not smallest or len(smallest) != len(aggregates):
        return select
    values = {a.this.sql(dialect=DuckDB) for a in smallest}
    counts = {_int_literal(a.args["count"]) for a in smallest}
    (count,) = counts if len(counts) == 1 else (None,)
    if len(values) != 1 or count is None or count < 1:
        return select
    if any(col.table for e in select.expressions for col in e.find_all(exp.Column)):
        return select
    order = exp.Order(expressions=[exp.Ordered(this=smallest[0].this.copy(), desc=False, nulls_first=False)])
    rank = exp.Window(this=exp.RowNumber(), partition_by=[key.copy() for key in keys], order=order)
    inner = exp.select(exp.Star(), exp.alias_(rank, _RANK)).from_(source.this.copy())
    if select.args.get("where") is not None:
        inner.set("where", select.args["where"].copy())
    bounded = select.copy()
    bounded.set("from_", exp.From(this=inner.subquery("__dg_smallest")))
    bounded.set("where", exp.Where(this=exp.LTE(this=exp.column(_RANK), expression=_lit(count))))
    return bounded


def _anchored(pattern: str) -> bool:
    """At most one match: anchored at either end and no top-level alternation."""
    return (pattern.startswith("^") or (pattern.endswith("$") and not pattern.endswith("\\$"))) and "|" not in pattern


@dataclass
class _Context:
    sql: str
    types: _Types
    functions: Collection[str] | None
    relations: Callable[[list[str]], str] | None
    hash_arities: set[int] = field(default_factory=set)
    arg_kind: dict[int, str] = field(default_factory=dict)  # id(node) -> kind of its operand, before rewriting

    def fail(self, construct: str) -> UnsupportedSQL:
        return UnsupportedSQL(construct, self.sql)


def _rewrite(node: exp.Expression, ctx: _Context) -> exp.Expression:  # noqa: C901 - one rule per branch
    kind = ctx.arg_kind.get(id(node), UNKNOWN)
    if isinstance(node, exp.Div):
        return exp.Div(this=exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE")),
                       expression=exp.Cast(this=node.expression, to=exp.DataType.build("DOUBLE")))
    if isinstance(node, (exp.Cast, exp.TryCast)):
        target = node.to.this
        if target in _INTEGER_TYPES:
            if kind == FLOAT:
                node.set("this", _fn("bround", node.this))
            elif kind == DECIMAL:
                node.set("this", _fn("round", node.this))
            elif kind in (UNKNOWN, TIMESTAMP, DATE, ARRAY):
                raise ctx.fail(f"cast of a {kind} value to {node.to.sql('duckdb')} "
                               "(DuckDB rounds doubles and decimals, Spark truncates)")
        elif target in _TEXT_TYPES and kind in (FLOAT, UNKNOWN):
            raise ctx.fail(f"cast of a {kind} value to text (DuckDB and Spark format numbers differently)")
        return node
    if isinstance(node, exp.BitwiseRightShift):
        bits = _int_literal(node.expression)
        if bits is None or bits < 0:
            raise ctx.fail("right shift by a non-constant amount")
        inner = node.this
        if isinstance(inner, exp.Anonymous) and inner.name.lower() == "md5_number_upper" and bits == 32:
            return _md5_upper_shift32(inner.expressions[0])
        if kind == UINT:
            return exp.IntDiv(this=inner, expression=_lit(2**bits))
        if kind == INT:
            return _fn("shiftright", inner, _lit(bits))
        raise ctx.fail(f"right shift of a {kind} value")
    if isinstance(node, exp.Min) and node.args.get("count") is not None:
        count = node.args["count"]
        return _fn("slice", _fn("array_sort", _fn("collect_list", node.this)), _lit(1), count)
    if isinstance(node, exp.ArrayAgg):
        inner = node.this
        if isinstance(inner, exp.Order):
            keys = inner.expressions
            if len(keys) == 1 and keys[0].this == inner.this and not keys[0].args.get("desc"):
                return _fn("array_sort", _fn("collect_list", inner.this))
            raise ctx.fail("list(x ORDER BY ...) ordered by anything but x ascending")
        return node
    if isinstance(node, exp.TimeToUnix):  # epoch(ts): seconds as DOUBLE
        if kind != TIMESTAMP:
            raise ctx.fail(f"epoch() of a {kind} value")
        return exp.Div(this=_fn("unix_micros", node.this), expression=exp.Literal.number("1000000.0D"))
    if isinstance(node, exp.UnixToTime):
        scale = _int_literal(node.args.get("scale"))
        if scale != 3 or node.args.get("zone") or node.args.get("format"):
            raise ctx.fail("epoch_*() other than epoch_ms")
        if kind == TIMESTAMP:
            return _fn("unix_millis", node.this)
        if kind in (INT, UINT):
            return _fn("timestamp_millis", node.this)
        raise ctx.fail(f"epoch_ms() of a {kind} value")
    if isinstance(node, exp.Length):
        if kind == ARRAY:
            return _fn("size", node.this)
        if kind == STRING:
            return node
        raise ctx.fail(f"len() of a {kind} value (a list in DuckDB, a string in Spark?)")
    if isinstance(node, exp.ArrayOverlaps):
        return _fn("arrays_overlap", node.this, node.expression)
    if isinstance(node, exp.Bracket):
        if kind != ARRAY:
            raise ctx.fail(f"[] on a {kind} value")
        (index,) = node.expressions
        if isinstance(index, exp.Slice):
            lo, hi = _int_literal(index.this), _int_literal(index.expression)
            if lo is None or hi is None or lo < 1 or hi < lo - 1:
                raise ctx.fail("list slice with non-constant or non-positive bounds")
            return _fn("slice", node.this, _lit(lo), _lit(hi - lo + 1))
        position = _int_literal(index)  # SQLGlot stores DuckDB's 1-based literal index 0-based
        if position is None:
            raise ctx.fail("list index that is not a constant")
        return _fn("element_at", node.this, _lit(position + 1))
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Count) and \
            isinstance(node.this.this, exp.Distinct):
        values = node.this.this.expressions
        if len(values) != 1:
            raise ctx.fail("count(DISTINCT a, b) OVER (...)")
        node.set("this", _fn("collect_set", values[0]))
        return _fn("size", node)
    if isinstance(node, exp.Window) and isinstance(node.this, exp.AggFunc) and \
            isinstance(node.this.this, exp.Distinct):
        raise ctx.fail("DISTINCT aggregate over a window")
    if isinstance(node, exp.RegexpReplace):
        modifiers = node.args.get("modifiers")
        flags = modifiers.name if modifiers is not None else ""
        pattern, replacement = node.expression, node.args.get("replacement")
        if not isinstance(pattern, exp.Literal) or (replacement is not None and not isinstance(replacement,
                                                                                                 exp.Literal)):
            raise ctx.fail("regexp_replace with a non-literal pattern or replacement")
        if replacement is not None and ("\\" in replacement.name or "$" in replacement.name):
            raise ctx.fail("regexp_replace with group references (\\1 in DuckDB, $1 in Spark)")
        if flags not in ("", "g"):
            raise ctx.fail(f"regexp_replace options '{flags}'")
        if flags == "" and not _anchored(pattern.name):
            raise ctx.fail("regexp_replace without 'g' (first match only) on an unanchored pattern")
        node.set("modifiers", None)
        node.set("single_replace", None)
        return node
    if isinstance(node, exp.Pivot) and node.args.get("unpivot") and node.args.get("into") is not None:
        into = node.args["into"]
        values = into.expressions
        source = node.this
        if len(values) != 1 or not isinstance(source, exp.Table):
            raise ctx.fail("UNPIVOT with several value columns or a non-table source")
        columns = ", ".join(c.sql(dialect=_Spark) for c in node.expressions)
        rebuilt = sqlglot.parse_one(
            f"SELECT * FROM {source.sql(dialect=_Spark)} UNPIVOT ({values[0].sql(dialect=_Spark)} FOR "
            f"{into.this.sql(dialect=_Spark)} IN ({columns}))", read=Spark)
        query = cast(exp.Query, rebuilt)
        return cast(exp.Expression, query.subquery() if not isinstance(node.parent, exp.Subquery) else query)
    if isinstance(node, exp.GenerateSeries):
        if node.args.get("step") is not None:
            raise ctx.fail("range()/generate_series() with a step")
        start, end = cast(exp.Expression, node.args.get("start")), cast(exp.Expression, node.args.get("end"))
        if not node.args.get("is_end_exclusive"):
            end = exp.Add(this=end, expression=_lit(1))
        return _fn("range", start, end)
    if isinstance(node, exp.ReadParquet):
        if ctx.relations is None:
            raise ctx.fail("read_parquet() (no relation registered for it)")
        paths: list[str] = []
        for arg in node.expressions:
            items = arg.expressions if isinstance(arg, exp.Array) else [arg]
            for item in items:
                if not isinstance(item, exp.Literal) or not item.is_string:
                    raise ctx.fail("read_parquet() of a non-literal path or with options")
                paths.append(item.name)
        return exp.to_table(ctx.relations(paths))
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = node.expressions
        if name == "md5_number_upper":
            return node  # rewritten after its parent had the chance to read only 4 bytes (``>> 32``)
        if name == "hash":
            ctx.hash_arities.add(len(args))
            return _fn(DUCKDB_HASH_UDF.format(n=len(args)), *args)
        if name in ("list_intersect", "array_intersect"):
            return _fn("array_intersect", *args)
        if name in ("list_extract", "array_extract", "list_element"):
            return _fn("element_at", *args)
        if name in ("list_slice", "array_slice"):
            lo, hi = (_int_literal(a) for a in args[1:3]) if len(args) == 3 else (None, None)
            if lo is None or hi is None or lo < 1 or hi < lo - 1:
                raise ctx.fail("list_slice with non-constant or non-positive bounds")
            return _fn("slice", args[0], _lit(lo), _lit(hi - lo + 1))
        if name in ("md5_number", "md5_number_lower"):
            raise ctx.fail(f"{name}()")
        return node
    if isinstance(node, exp.Star) and any(node.args.get(k) for k in ("except_", "except", "replace", "rename")):
        raise ctx.fail("SELECT * EXCLUDE/REPLACE")
    if isinstance(node, exp.Select) and node.args.get("qualify") is not None:
        raise ctx.fail("QUALIFY")
    if isinstance(node, exp.Placeholder):
        raise ctx.fail("a ? parameter left unbound")
    return node


# Spark built-ins the rules emit, and those SQLGlot emits for DuckDB functions it knows
_EMITTED = frozenset({"slice", "array_sort", "collect_list", "collect_set", "size", "bround", "round", "shiftright",
                      "unix_micros", "unix_millis", "timestamp_millis", "arrays_overlap", "array_intersect",
                      "element_at", "range", "md5", "substr", "regexp_extract_all", "array_join", "reverse", "conv"})


def to_spark(tree: exp.Expression, *, sql: str = "", tables: Mapping[str, Mapping[str, str]] | None = None,
             functions: Collection[str] | None = None,
             relations: Callable[[list[str]], str] | None = None) -> Translation:
    """Rewrite a parsed DuckDB statement for Spark (see the module docstring), or raise :class:`UnsupportedSQL`.

    ``tables`` maps relation names to their columns' kinds (:data:`INT`, :data:`FLOAT`, ...), for the
    type-dependent rules; ``functions`` are the function names Spark knows (any other function name left
    in the output is an error); ``relations`` turns a ``read_parquet`` path list into a registered view name.
    """
    tree = tree.copy()
    for select in reversed(list(tree.find_all(exp.Select))):  # inner selects first: an outer one copies them
        bounded = _bound_smallest(select)
        if bounded is not select:
            if select is tree:
                tree = bounded
            else:
                select.replace(bounded)
    types = _Types(tree, tables or {})
    ctx = _Context(sql or tree.sql(dialect=DuckDB), types, functions, relations)
    nodes = list(tree.walk(bfs=False))
    for node in nodes:  # operand kinds on the DuckDB tree, before any rewrite changes them
        operand = node.this if isinstance(node, exp.Expression) else None
        if isinstance(node, (exp.Cast, exp.TryCast, exp.BitwiseRightShift, exp.TimeToUnix, exp.UnixToTime,
                             exp.Length, exp.Bracket)):
            ctx.arg_kind[id(node)] = types.of(operand)
    for node in reversed(nodes):  # children before parents
        parent, key, index = node.parent, node.arg_key, node.index
        new = _rewrite(cast(exp.Expression, node), ctx)
        if new is not node:
            if node is tree or parent is None:
                tree = new
            else:
                parent.set(cast(str, key), new, index)
    for call in list(tree.find_all(exp.Anonymous)):
        if call.name.lower() == "md5_number_upper":
            new = _md5_upper(call.expressions[0])
            if call is tree:
                tree = new
            else:
                call.replace(new)
    out = Translation(tree, ctx.hash_arities)
    if functions is not None:
        known = {f.lower() for f in functions} | _EMITTED
        for name in called_functions(out.sql):
            if name not in known and not name.startswith("dg_duckdb_hash_"):
                raise UnsupportedSQL(f"function {name}() (not a Spark function)", ctx.sql)
    return out


def called_functions(spark_sql: str) -> set[str]:
    """Names called as functions in Spark SQL text: identifiers followed by ``(``, except column lists after AS."""
    tokens = _Spark().tokenize(spark_sql)
    names = set()
    for i, token in enumerate(tokens[:-1]):
        if token.token_type == sqlglot.TokenType.VAR and tokens[i + 1].token_type == sqlglot.TokenType.L_PAREN and \
                (i == 0 or tokens[i - 1].token_type != sqlglot.TokenType.ALIAS):
            names.add(token.text.lower())
    return names


def transpile(sql: str, **kwargs) -> str:
    """DuckDB SQL text -> Spark SQL text (one statement); see :func:`to_spark`."""
    return to_spark(parse(sql), sql=sql, **kwargs).sql

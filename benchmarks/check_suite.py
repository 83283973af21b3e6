"""The check suite alone: dq_assets vs hand-written DuckDB SQL vs pandera vs Great Expectations
vs Soda Core (the last in its own virtualenv, driven in a subprocess: benchmarks/soda_scan.py).

Every tool gets the SAME input, the raw rows of a table as dq_assets reads them
(`dq_assets.landing.csv_files.read_csv_file`: every value as untrimmed text, plus lineage) and the keys
received in the referenced tables, and evaluates the SAME rules, the contract's (§2, §3):

  missing_required    a required value null or blank after trimming
  unparseable         decimal / integer / timestamp spellings of the contract
  invalid_value       accepted values (case-insensitive), ISO currency / country, email shape
  out_of_range        amount, unit_price >= 0, quantity >= 1
  future_timestamp    order_ts later than the ingest day's end + 1 hour
  calculation_mismatch  line_amount = quantity x unit_price within 0.01
  unknown_reference   customer_id, order_id, product_id received in the referenced table
  duplicate           rows beyond the first of a key (among rows that pass every other rule)

A rule's result is its failing-row count; the run FAILS (exit 1) unless every tool finds the
same count for every rule. dq_assets runs its own `dq_assets.rules.cleaning.validate`, which also
builds the typed staging rows and the quarantine (that is its job in the warehouse); the
hand-written SQL only counts, so it is the practical lower limit for the same rules in DuckDB.
GE and pandera get the raw table as a pandas DataFrame (the conversion is part of their time);
what GE cannot say on text (numeric ranges, arithmetic, time comparisons, trimming) is pandas
code that derives helper columns inside the GE run.

    python -m benchmarks.check_suite --landing DIR --date YYYY-MM-DD --out result.json \
        [--soda-python benchmarks/.venvs/soda/bin/python]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from GE

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from dq_assets.contract import tables as C
from dq_assets.landing.csv_files import read_csv_file
from dq_assets.rules.cleaning import validate
from dq_assets.storage.duckdb.warehouse import connect_duckdb

TABLES = ("orders", "order_items", "customers")

# ------------------------------------------------------------------ the rules (by hand)

# Rule ids are "<reason>:<column or row rule>", as dq_assets reports them.
RULES: dict[str, list[str]] = {
    "orders": [
        *(f"missing_required:{c}" for c in
          ("order_id", "customer_id", "order_ts", "status", "currency", "amount", "updated_at")),
        "unparseable:order_ts", "unparseable:amount", "unparseable:updated_at",
        "invalid_value:status", "invalid_value:currency",
        "out_of_range:amount",
        "future_timestamp:order_ts",
        "unknown_reference:customer_id",
        "duplicate:*",
    ],
    "order_items": [
        *(f"missing_required:{c}" for c in
          ("order_id", "line_no", "product_id", "quantity", "unit_price", "line_amount")),
        "unparseable:line_no", "unparseable:quantity", "unparseable:unit_price",
        "unparseable:line_amount",
        "out_of_range:quantity", "out_of_range:unit_price",
        "calculation_mismatch:line_amount_is_quantity_times_price",
        "unknown_reference:order_id", "unknown_reference:product_id",
        "duplicate:*",
    ],
    "customers": [
        *(f"missing_required:{c}" for c in
          ("customer_id", "email", "full_name", "country_code", "signup_ts", "updated_at")),
        "unparseable:signup_ts", "unparseable:updated_at",
        "invalid_value:email", "invalid_value:country_code",
        "duplicate:*",
    ],
}
KEYS = {"orders": ["order_id"], "order_items": ["order_id", "line_no"], "customers": ["customer_id"]}
# referencing column -> referenced table (its key column has the same name)
REFS = {"orders": {"customer_id": "customers"},
        "order_items": {"order_id": "orders", "product_id": "products"},
        "customers": {}}

# The contract's value formats (§2), written out once for the pandas tools and the SQL.
WS = " \t\r\n"
DEC = r"[+-]?(?:\d{1,32}(?:\.\d{0,6}0*)?|\.\d{1,6}0*)"
INT = r"[+-]?\d{1,18}"
ISO = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-](?:0\d|1[0-4]):[0-5]\d)?"
EPOCH = r"-?\d{1,11}"
EMAIL = r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+"
ORDER_STATUSES, CURRENCIES, COUNTRIES = C.ORDER_STATUSES, C.currency_codes(), C.country_codes()

# ------------------------------------------------------------------ inputs


def read_inputs(landing: Path, day: str) -> dict:
    """Raw tables (Arrow, as dq_assets reads them) and the received keys of the referenced
    tables, as (key, ingest_date) Arrow tables (dq_assets / SQL) and Python sets (pandas)."""
    conn = connect_duckdb()
    folder = landing / f"ingest_date={day}"
    raw = {}
    for name in {*TABLES, *(t for r in REFS.values() for t in r.values())}:
        t = C.table(name)
        raw[name], _ = read_csv_file(conn, folder / t.file_name, t, day, t.file_name)
    keys_arrow, keys_set = {}, {}
    for target in {t for r in REFS.values() for t in r.values()}:
        col = C.table(target).key[0]
        conn.register("_r", raw[target])
        keys_arrow[target] = conn.sql(
            f"""SELECT DISTINCT NULLIF(trim("{col}", ' \t\r\n'), '') AS key, ingest_date
                FROM _r WHERE key IS NOT NULL""").to_arrow_table()
        conn.unregister("_r")
        keys_set[target] = set(keys_arrow[target].column("key").to_pylist())
    return {"raw": raw, "keys_arrow": keys_arrow, "keys_set": keys_set, "day": day}


# ------------------------------------------------------------------ dq_assets


def run_dq_assets(table: str, inp: dict) -> tuple[dict, dict]:
    t = C.table(table)
    refs = {col: inp["keys_arrow"][target] for col, target in REFS[table].items()}
    conn = connect_duckdb()
    result = validate(conn, t, inp["raw"][table], refs)
    counts: Counter = Counter()
    for row in result.failures.to_pylist():
        if row["column"] == "*" and row["reason"] != "duplicate":
            continue  # per-reason totals; the rules are per column
        counts[f"{row['reason']}:{row['column']}"] += row["failing_rows"]
    conn.close()
    return dict(counts), {"staging_rows": result.staging.num_rows,
                          "quarantine_rows": result.quarantine.num_rows}


# ------------------------------------------------------------------ hand-written DuckDB SQL

WS_SQL = "' \t\r\n'"  # a SQL literal holding the real space, tab, CR and LF characters
SQL_MACROS = rf"""
CREATE OR REPLACE TEMP MACRO txt(x) AS NULLIF(trim(x, {WS_SQL}), '');
CREATE OR REPLACE TEMP MACRO as_dec(x) AS
    CASE WHEN regexp_full_match(x, '{DEC}') THEN TRY_CAST(x AS DECIMAL(38,6)) END;
CREATE OR REPLACE TEMP MACRO as_int(x) AS
    CASE WHEN regexp_full_match(x, '{INT}') THEN TRY_CAST(x AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO as_ts(x) AS
    CASE WHEN regexp_full_match(x, '{ISO}') THEN TRY_CAST(upper(x) AS TIMESTAMPTZ)
         WHEN regexp_full_match(x, '{EPOCH}') THEN to_timestamp(CAST(x AS BIGINT)) END;
"""


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


SQL = {
    "orders": f"""
WITH t AS (
    SELECT ingest_date, txt(order_id) AS order_id, txt(customer_id) AS customer_id,
           txt(order_ts) AS order_ts, txt(status) AS status, txt(currency) AS currency,
           txt(amount) AS amount, txt(updated_at) AS updated_at
    FROM raw
), v AS (
    SELECT t.*, as_ts(order_ts) AS order_ts_v, as_dec(amount) AS amount_v, as_ts(updated_at) AS updated_at_v,
           c.key IS NOT NULL AS customer_known
    FROM t LEFT JOIN (SELECT key, min(ingest_date) AS since FROM ref_customers GROUP BY key) c
         ON c.key = t.customer_id AND c.since <= t.ingest_date
), f AS (
    SELECT ingest_date, order_id,
           order_id IS NULL AS m1, customer_id IS NULL AS m2, order_ts IS NULL AS m3,
           status IS NULL AS m4, currency IS NULL AS m5, amount IS NULL AS m6, updated_at IS NULL AS m7,
           order_ts IS NOT NULL AND order_ts_v IS NULL AS u1,
           amount IS NOT NULL AND amount_v IS NULL AS u2,
           updated_at IS NOT NULL AND updated_at_v IS NULL AS u3,
           status IS NOT NULL AND lower(status) NOT IN {_in(ORDER_STATUSES)} AS i1,
           currency IS NOT NULL AND upper(currency) NOT IN {_in(CURRENCIES)} AS i2,
           coalesce(amount_v < 0, false) AS r1,
           coalesce(order_ts_v > CAST(ingest_date AS TIMESTAMPTZ) + INTERVAL 25 HOUR, false) AS fu1,
           customer_id IS NOT NULL AND NOT customer_known AS k1
    FROM v
), g AS (
    SELECT *, (m1 OR m2 OR m3 OR m4 OR m5 OR m6 OR m7 OR u1 OR u2 OR u3 OR i1 OR i2 OR r1
               OR fu1 OR k1) AS bad FROM f
)
SELECT count_if(m1) AS "missing_required:order_id", count_if(m2) AS "missing_required:customer_id",
       count_if(m3) AS "missing_required:order_ts", count_if(m4) AS "missing_required:status",
       count_if(m5) AS "missing_required:currency", count_if(m6) AS "missing_required:amount",
       count_if(m7) AS "missing_required:updated_at",
       count_if(u1) AS "unparseable:order_ts", count_if(u2) AS "unparseable:amount",
       count_if(u3) AS "unparseable:updated_at",
       count_if(i1) AS "invalid_value:status", count_if(i2) AS "invalid_value:currency",
       count_if(r1) AS "out_of_range:amount", count_if(fu1) AS "future_timestamp:order_ts",
       count_if(k1) AS "unknown_reference:customer_id",
       count_if(NOT bad) - count(DISTINCT CASE WHEN NOT bad THEN (ingest_date, order_id) END)
           AS "duplicate:*"
FROM g
""",
    "order_items": """
WITH t AS (
    SELECT ingest_date, txt(order_id) AS order_id, txt(line_no) AS line_no,
           txt(product_id) AS product_id, txt(quantity) AS quantity,
           txt(unit_price) AS unit_price, txt(line_amount) AS line_amount
    FROM raw
), v AS (
    SELECT t.*, as_int(line_no) AS line_no_v, as_int(quantity) AS quantity_v,
           as_dec(unit_price) AS unit_price_v, as_dec(line_amount) AS line_amount_v,
           o.key IS NOT NULL AS order_known, p.key IS NOT NULL AS product_known
    FROM t
    LEFT JOIN (SELECT DISTINCT key, ingest_date FROM ref_orders) o
           ON o.key = t.order_id AND o.ingest_date = t.ingest_date
    LEFT JOIN (SELECT key, min(ingest_date) AS since FROM ref_products GROUP BY key) p
           ON p.key = t.product_id AND p.since <= t.ingest_date
), f AS (
    SELECT ingest_date, order_id, line_no_v,
           order_id IS NULL AS m1, line_no IS NULL AS m2, product_id IS NULL AS m3,
           quantity IS NULL AS m4, unit_price IS NULL AS m5, line_amount IS NULL AS m6,
           line_no IS NOT NULL AND line_no_v IS NULL AS u1,
           quantity IS NOT NULL AND quantity_v IS NULL AS u2,
           unit_price IS NOT NULL AND unit_price_v IS NULL AS u3,
           line_amount IS NOT NULL AND line_amount_v IS NULL AS u4,
           coalesce(quantity_v < 1, false) AS r1, coalesce(unit_price_v < 0, false) AS r2,
           coalesce(abs(line_amount_v - quantity_v * unit_price_v) > 0.01, false) AS c1,
           order_id IS NOT NULL AND NOT order_known AS k1,
           product_id IS NOT NULL AND NOT product_known AS k2
    FROM v
), g AS (
    SELECT *, (m1 OR m2 OR m3 OR m4 OR m5 OR m6 OR u1 OR u2 OR u3 OR u4 OR r1 OR r2 OR c1
               OR k1 OR k2) AS bad FROM f
)
SELECT count_if(m1) AS "missing_required:order_id", count_if(m2) AS "missing_required:line_no",
       count_if(m3) AS "missing_required:product_id", count_if(m4) AS "missing_required:quantity",
       count_if(m5) AS "missing_required:unit_price", count_if(m6) AS "missing_required:line_amount",
       count_if(u1) AS "unparseable:line_no", count_if(u2) AS "unparseable:quantity",
       count_if(u3) AS "unparseable:unit_price", count_if(u4) AS "unparseable:line_amount",
       count_if(r1) AS "out_of_range:quantity", count_if(r2) AS "out_of_range:unit_price",
       count_if(c1) AS "calculation_mismatch:line_amount_is_quantity_times_price",
       count_if(k1) AS "unknown_reference:order_id", count_if(k2) AS "unknown_reference:product_id",
       count_if(NOT bad)
           - count(DISTINCT CASE WHEN NOT bad THEN (ingest_date, order_id, line_no_v) END)
           AS "duplicate:*"
FROM g
""",
    "customers": f"""
WITH t AS (
    SELECT ingest_date, txt(customer_id) AS customer_id, txt(email) AS email,
           txt(full_name) AS full_name, txt(country_code) AS country_code,
           txt(signup_ts) AS signup_ts, txt(updated_at) AS updated_at
    FROM raw
), f AS (
    SELECT ingest_date, customer_id,
           customer_id IS NULL AS m1, email IS NULL AS m2, full_name IS NULL AS m3,
           country_code IS NULL AS m4, signup_ts IS NULL AS m5, updated_at IS NULL AS m6,
           signup_ts IS NOT NULL AND as_ts(signup_ts) IS NULL AS u1,
           updated_at IS NOT NULL AND as_ts(updated_at) IS NULL AS u2,
           email IS NOT NULL AND NOT regexp_full_match(email, '{EMAIL}') AS i1,
           country_code IS NOT NULL AND upper(country_code) NOT IN {_in(COUNTRIES)} AS i2
    FROM t
), g AS (
    SELECT *, (m1 OR m2 OR m3 OR m4 OR m5 OR m6 OR u1 OR u2 OR i1 OR i2) AS bad FROM f
)
SELECT count_if(m1) AS "missing_required:customer_id", count_if(m2) AS "missing_required:email",
       count_if(m3) AS "missing_required:full_name", count_if(m4) AS "missing_required:country_code",
       count_if(m5) AS "missing_required:signup_ts", count_if(m6) AS "missing_required:updated_at",
       count_if(u1) AS "unparseable:signup_ts", count_if(u2) AS "unparseable:updated_at",
       count_if(i1) AS "invalid_value:email", count_if(i2) AS "invalid_value:country_code",
       count_if(NOT bad) - count(DISTINCT CASE WHEN NOT bad THEN (ingest_date, customer_id) END)
           AS "duplicate:*"
FROM g
""",
}


def run_sql(table: str, inp: dict) -> tuple[dict, dict]:
    conn = connect_duckdb()
    conn.execute(SQL_MACROS)
    conn.register("raw", inp["raw"][table])
    for target in REFS[table].values():
        conn.register(f"ref_{target}", inp["keys_arrow"][target])
    cur = conn.execute(SQL[table])
    row = cur.fetchall()[0]
    counts = dict(zip((d[0] for d in cur.description), (int(v) for v in row)))
    conn.close()
    return counts, {}


# ------------------------------------------------------------------ pandas helpers (by hand)


def trimmed(s: pd.Series) -> pd.Series:
    """Trimmed text, None when null or blank."""
    t = s.str.strip(WS)
    return t.where(t != "")


def to_decimal(t: pd.Series) -> pd.Series:
    """float value of a trimmed decimal text; NaN when missing or unparseable."""
    ok = t.str.fullmatch(DEC) == True  # noqa: E712 (NaN -> False)
    return pd.to_numeric(t.where(ok), errors="coerce")


def to_integer(t: pd.Series) -> pd.Series:
    ok = t.str.fullmatch(INT) == True  # noqa: E712
    return pd.to_numeric(t.where(ok), errors="coerce")


_ISO_PARTS = r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))?"


def to_epoch_seconds(t: pd.Series) -> pd.Series:
    """UTC epoch seconds (whole seconds) of a trimmed timestamp text; NaN when missing or not one
    of the contract's spellings."""
    out = pd.Series(np.nan, index=t.index)
    iso = t.str.fullmatch(ISO) == True  # noqa: E712
    if iso.any():
        parts = t[iso].str.extract(_ISO_PARTS)
        local = pd.to_datetime(parts[0] + " " + parts[1], format="%Y-%m-%d %H:%M:%S", errors="coerce")
        secs = (local - pd.Timestamp("1970-01-01")).dt.total_seconds()
        sign = parts[2].map({"+": 1.0, "-": -1.0}).fillna(0.0)
        offset = sign * (pd.to_numeric(parts[3]).fillna(0) * 3600 + pd.to_numeric(parts[4]).fillna(0) * 60)
        out[iso] = secs - offset
    epoch = t.str.fullmatch(EPOCH) == True  # noqa: E712
    if epoch.any():
        out[epoch] = pd.to_numeric(t[epoch]).astype("float64")
    return out


def day_end_plus_hour(day: str) -> float:
    d = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=timezone.utc)
    return (d + timedelta(hours=25)).timestamp()


def excess_rows(keys: pd.DataFrame) -> pd.Series:
    """TRUE for every row beyond the first of its key (rows with a missing key part excluded)."""
    return keys.duplicated(keep="first") & keys.notna().all(axis=1)


# ------------------------------------------------------------------ pandera


def pandera_schema(table: str, inp: dict):
    import pandera.pandas as pa_

    limit = day_end_plus_hour(inp["day"])
    sets = {col: inp["keys_set"][target] for col, target in REFS[table].items()}
    t = C.table(table)

    def present(col):
        return pa_.Check(lambda s: trimmed(s).notna(), ignore_na=False, name=f"missing_required:{col}")

    def parses(col, kind):
        conv = {C.DECIMAL: to_decimal, C.INTEGER: to_integer, C.TIMESTAMP: to_epoch_seconds}[kind]
        return pa_.Check(lambda s: (lambda x: x.isna() | conv(x).notna())(trimmed(s)),
                         name=f"unparseable:{col}")

    checks: dict[str, list] = {c: [present(c)] for c in t.column_names}
    for col in t.columns:
        if col.kind in C.PARSED_KINDS:
            checks[col.name].append(parses(col.name, col.kind))
    if table == "orders":
        checks["status"].append(pa_.Check(
            lambda s: (lambda x: x.isna() | x.str.lower().isin(ORDER_STATUSES))(trimmed(s)),
            name="invalid_value:status"))
        checks["currency"].append(pa_.Check(
            lambda s: (lambda x: x.isna() | x.str.upper().isin(CURRENCIES))(trimmed(s)),
            name="invalid_value:currency"))
        checks["amount"].append(pa_.Check(lambda s: ~(to_decimal(trimmed(s)) < 0),
                                          name="out_of_range:amount"))
        checks["order_ts"].append(pa_.Check(lambda s: ~(to_epoch_seconds(trimmed(s)) > limit),
                                            name="future_timestamp:order_ts"))
    elif table == "order_items":
        checks["quantity"].append(pa_.Check(lambda s: ~(to_integer(trimmed(s)) < 1),
                                            name="out_of_range:quantity"))
        checks["unit_price"].append(pa_.Check(lambda s: ~(to_decimal(trimmed(s)) < 0),
                                              name="out_of_range:unit_price"))
    elif table == "customers":
        checks["email"].append(pa_.Check(
            lambda s: (lambda x: x.isna() | (x.str.fullmatch(EMAIL) == True))(trimmed(s)),  # noqa: E712
            name="invalid_value:email"))
        checks["country_code"].append(pa_.Check(
            lambda s: (lambda x: x.isna() | x.str.upper().isin(COUNTRIES))(trimmed(s)),
            name="invalid_value:country_code"))
    for col, keys in sets.items():
        checks[col].append(pa_.Check(
            lambda s, keys=keys: (lambda x: x.isna() | x.isin(keys))(trimmed(s)),
            name=f"unknown_reference:{col}"))

    frame_checks = []
    if table == "order_items":
        def calc(df):
            q = to_integer(trimmed(df["quantity"]))
            p = to_decimal(trimmed(df["unit_price"]))
            a = to_decimal(trimmed(df["line_amount"]))
            return ~(((a - q * p).abs() - 0.01) > 1e-9)
        frame_checks.append(pa_.Check(calc, name="calculation_mismatch:line_amount_is_quantity_times_price"))
    key = KEYS[table]
    frame_checks.append(pa_.Check(
        lambda df: ~excess_rows(pd.DataFrame({k: trimmed(df[k]) for k in key})),
        name="duplicate:*"))
    columns = {c: pa_.Column(None, nullable=True, checks=checks[c]) for c in t.column_names}
    return pa_.DataFrameSchema(columns, checks=frame_checks)


def run_pandera(table: str, inp: dict) -> tuple[dict, dict]:
    import pandera.pandas as pa_

    t0 = time.perf_counter()
    df = inp["raw"][table].select(list(C.table(table).column_names)).to_pandas()
    convert = time.perf_counter() - t0
    schema = pandera_schema(table, inp)
    counts: dict = {}
    try:
        schema.validate(df, lazy=True)
    except pa_.errors.SchemaErrors as e:
        fc = e.failure_cases
        counts = {k: int(v) for k, v in fc.groupby("check")["index"].nunique().items()}
    return counts, {"to_pandas_s": round(convert, 3)}


# ------------------------------------------------------------------ Great Expectations


def run_great_expectations(table: str, inp: dict) -> tuple[dict, dict]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    t0 = time.perf_counter()
    raw = inp["raw"][table].select(list(C.table(table).column_names)).to_pandas()
    convert = time.perf_counter() - t0
    # Helper columns GE cannot derive itself: trimmed text (blank = missing), and the numbers
    # and instants behind the range / arithmetic / time rules.
    df = pd.DataFrame({c: trimmed(raw[c]) for c in raw.columns})
    exps = []

    def add(rule, cls, **kw):
        exps.append(cls(meta={"rule": rule}, **kw))

    tbl = C.table(table)
    for col in tbl.columns:
        add(f"missing_required:{col.name}", gxe.ExpectColumnValuesToNotBeNull, column=col.name)
        if col.kind == C.DECIMAL:
            add(f"unparseable:{col.name}", gxe.ExpectColumnValuesToMatchRegex, column=col.name, regex=f"^{DEC}$")
        elif col.kind == C.INTEGER:
            add(f"unparseable:{col.name}", gxe.ExpectColumnValuesToMatchRegex, column=col.name, regex=f"^{INT}$")
        elif col.kind == C.TIMESTAMP:
            add(f"unparseable:{col.name}", gxe.ExpectColumnValuesToMatchRegex,
                column=col.name, regex=f"^(?:{ISO}|{EPOCH})$")
    if table == "orders":
        add("invalid_value:status", gxe.ExpectColumnValuesToMatchRegex,
            column="status", regex=f"(?i)^(?:{'|'.join(ORDER_STATUSES)})$")
        add("invalid_value:currency", gxe.ExpectColumnValuesToMatchRegex,
            column="currency", regex=f"(?i)^(?:{'|'.join(sorted(CURRENCIES))})$")
        df["_amount"] = to_decimal(df["amount"])
        add("out_of_range:amount", gxe.ExpectColumnValuesToBeBetween, column="_amount", min_value=0)
        df["_order_ts"] = to_epoch_seconds(df["order_ts"])
        add("future_timestamp:order_ts", gxe.ExpectColumnValuesToBeBetween,
            column="_order_ts", max_value=day_end_plus_hour(inp["day"]))
    elif table == "order_items":
        q, p = to_integer(df["quantity"]), to_decimal(df["unit_price"])
        df["_quantity"], df["_unit_price"] = q, p
        df["_line_diff"] = (to_decimal(df["line_amount"]) - q * p).abs()
        add("out_of_range:quantity", gxe.ExpectColumnValuesToBeBetween, column="_quantity", min_value=1)
        add("out_of_range:unit_price", gxe.ExpectColumnValuesToBeBetween, column="_unit_price", min_value=0)
        add("calculation_mismatch:line_amount_is_quantity_times_price",
            gxe.ExpectColumnValuesToBeBetween, column="_line_diff", max_value=0.01 + 1e-9)
    elif table == "customers":
        add("invalid_value:email", gxe.ExpectColumnValuesToMatchRegex, column="email", regex=f"^{EMAIL}$")
        add("invalid_value:country_code", gxe.ExpectColumnValuesToMatchRegex,
            column="country_code", regex=f"(?i)^(?:{'|'.join(sorted(COUNTRIES))})$")
    for col, target in REFS[table].items():
        add(f"unknown_reference:{col}", gxe.ExpectColumnValuesToBeInSet,
            column=col, value_set=sorted(inp["keys_set"][target]))

    key = KEYS[table]
    df["_key"] = df[key[0]]
    for part in key[1:]:
        df["_key"] = df["_key"] + "|" + df[part]  # NaN when a part is missing
    add("_key_present", gxe.ExpectColumnValuesToNotBeNull, column="_key")
    add("_key_distinct", gxe.ExpectColumnUniqueValueCountToBeBetween, column="_key", min_value=0)

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    batch = (context.data_sources.add_pandas(name=f"bench_{table}")
             .add_dataframe_asset(name=table)
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": df}))
    suite = context.suites.add(gx.ExpectationSuite(name=f"{table}_contract"))
    for e in exps:
        suite.add_expectation(e)
    result = batch.validate(suite, result_format="BASIC")
    counts = {r.expectation_config.meta["rule"]: int(r.result.get("unexpected_count") or 0)
              for r in result.results}
    # Uniqueness, as rows beyond the first of a key: rows with a key minus distinct keys.
    # (GE's own uniqueness expectations count every row of a repeated key, and list at most
    # 200 of them, so the count comes from its distinct-value and not-null metrics.)
    results = {r.expectation_config.meta["rule"]: r for r in result.results}
    nonnull = results["_key_present"].result
    distinct = results["_key_distinct"].result["observed_value"]
    counts["duplicate:*"] = int(nonnull["element_count"] - nonnull["unexpected_count"] - distinct)
    for internal in ("_key_present", "_key_distinct"):
        counts.pop(internal)
    return counts, {"to_pandas_s": round(convert, 3), "expectations": len(exps)}


# ------------------------------------------------------------------ Soda Core (own virtualenv)

SODA_TXT_SQL = "NULLIF(trim({c}, " + WS_SQL + "), '')"


def soda_view_sql(table: str, day: str) -> list[str]:
    """The view Soda's checks read: every column trimmed (blank = missing; SodaCL cannot trim),
    and the numbers and instants behind the range, arithmetic and time rules as helper columns
    (SodaCL's `valid min`/`valid max` need typed values). DuckDB 1.0 SQL."""
    t = C.table(table)
    cols = [f'{SODA_TXT_SQL.format(c=chr(34) + c + chr(34))} AS "{c}"' for c in t.column_names]
    helpers = []
    if table == "orders":
        helpers = ["as_dec(amount) AS _amount", "epoch(as_ts(order_ts)) AS _order_ts"]
    elif table == "order_items":
        helpers = ["as_int(quantity) AS _quantity", "as_dec(unit_price) AS _unit_price",
                   "abs(as_dec(line_amount) - as_int(quantity) * as_dec(unit_price)) AS _line_diff"]
    key = " || '|' || ".join(f'"{k}"' for k in KEYS[table])  # NULL when a part is missing
    return [SQL_MACROS,
            f"CREATE OR REPLACE VIEW t_{table} AS SELECT {', '.join(cols)} FROM raw_{table}",
            f"CREATE OR REPLACE VIEW {table} AS SELECT *, {', '.join([*helpers, f'{key} AS _key'])} "
            f"FROM t_{table}"]


def soda_checks(table: str, day: str) -> str:
    """The table's SodaCL: built-in missing / validity / reference checks and one user-defined
    metric for key uniqueness (rows beyond the first of a key; SodaCL's duplicate_count counts
    repeated values, not extra rows). JSON, which is YAML."""
    checks: list = []

    def add(rule, check, **cfg):
        checks.append({check: {"name": rule, **cfg}})

    tbl = C.table(table)
    for col in tbl.columns:
        add(f"missing_required:{col.name}", f"missing_count({col.name}) = 0")
        regex = {C.DECIMAL: DEC, C.INTEGER: INT, C.TIMESTAMP: f"{ISO}|{EPOCH}"}.get(col.kind)
        if regex:
            add(f"unparseable:{col.name}", f"invalid_count({col.name}) = 0", **{"valid regex": f"^(?:{regex})$"})
    if table == "orders":
        add("invalid_value:status", "invalid_count(status) = 0",
            **{"valid regex": f"(?i)^(?:{'|'.join(ORDER_STATUSES)})$"})
        add("invalid_value:currency", "invalid_count(currency) = 0",
            **{"valid regex": f"(?i)^(?:{'|'.join(sorted(CURRENCIES))})$"})
        add("out_of_range:amount", "invalid_count(_amount) = 0", **{"valid min": 0})
        add("future_timestamp:order_ts", "invalid_count(_order_ts) = 0",
            **{"valid max": day_end_plus_hour(day)})
    elif table == "order_items":
        add("out_of_range:quantity", "invalid_count(_quantity) = 0", **{"valid min": 1})
        add("out_of_range:unit_price", "invalid_count(_unit_price) = 0", **{"valid min": 0})
        add("calculation_mismatch:line_amount_is_quantity_times_price", "invalid_count(_line_diff) = 0",
            **{"valid max": 0.01 + 1e-9})
    elif table == "customers":
        add("invalid_value:email", "invalid_count(email) = 0", **{"valid regex": f"^{EMAIL}$"})
        add("invalid_value:country_code", "invalid_count(country_code) = 0",
            **{"valid regex": f"(?i)^(?:{'|'.join(sorted(COUNTRIES))})$"})
    for col, target in REFS[table].items():
        add(f"unknown_reference:{col}", f"values in ({col}) must exist in ref_{target} (key)")
    add("duplicate:*", "extra_key_rows = 0",
        **{"extra_key_rows query": f"SELECT count(_key) - count(DISTINCT _key) FROM {table}"})
    return json.dumps({f"checks for {table}": checks}, indent=1)


_SODA: dict = {}  # one subprocess scans every table; its results per table


def run_soda(table: str, inp: dict) -> tuple[dict, dict]:
    """Soda Core 3.5 in its own virtualenv (it pins duckdb<1.1): the raw rows go to parquet,
    the subprocess loads them into its DuckDB and runs one scan per table. The time reported
    for a table is its scan, measured inside the subprocess (start-up, imports and loading the
    parquet files are reported apart)."""
    if "result" not in _SODA:
        import pyarrow.parquet as pq

        from benchmarks.measure import peak_mib, run_measured
        work = Path(inp["work"]) / "soda"
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        spec: dict = {"tables": {}, "refs": {}}
        for target, keys in inp["keys_arrow"].items():
            path = work / f"ref_{target}.parquet"
            pq.write_table(keys.select(["key"]), path)
            spec["refs"][target] = str(path)
        for name in inp["tables"]:
            path = work / f"{name}.parquet"
            pq.write_table(inp["raw"][name].select(list(C.table(name).column_names)), path)
            spec["tables"][name] = {"parquet": str(path), "setup_sql": soda_view_sql(name, inp["day"]),
                                    "sodacl": soda_checks(name, inp["day"])}
        (work / "spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        export_s = time.perf_counter() - t0
        r = run_measured([inp["soda_python"], str(Path(__file__).with_name("soda_scan.py")),
                          str(work / "spec.json"), str(work / "out.json")],
                         log=work / "soda.log", timeout=3600, env={**os.environ, "PYTHONPATH": ""})
        if r["exit_code"] != 0 or not (work / "out.json").exists():
            tail = (work / "soda.log").read_text(errors="replace").splitlines()[-8:]
            raise RuntimeError(f"soda scan exited {r['exit_code']}: " + " | ".join(tail))
        _SODA["result"] = json.loads((work / "out.json").read_text())
        _SODA["process"] = {"export_parquet_s": round(export_s, 3), "subprocess_s": r["wall_s"],
                            "peak_mib": peak_mib(r)}
    res = _SODA["result"]["tables"][table]
    if res.get("has_errors"):
        raise RuntimeError(f"soda scan of {table} had errors: {res.get('errors')}")
    counts = {k: v for k, v in res["counts"].items() if v is not None}
    missing = [k for k, v in res["counts"].items() if v is None]
    extra = {"timed_s": res["scan_s"], "load_s": res["load_s"], "queries": res["queries"],
             "per_rule": {k: {"failing_rows": res["counts"].get(k), "query_s": res["query_s"].get(k)}
                          for k in res["counts"]}}
    if missing:
        extra["no_value"] = missing
    return counts, extra


# ------------------------------------------------------------------ driver

TOOLS = {
    "dq_assets": (run_dq_assets, None),
    "duckdb_sql": (run_sql, None),
    "pandera": (run_pandera, "pandera"),
    "great_expectations": (run_great_expectations, "great_expectations"),
    "soda": (run_soda, "soda"),  # a module of its own virtualenv: see available()
}


class SelfRss:
    """Peak RSS of this process while a tool runs (psutil, polled every 20 ms)."""

    def __init__(self):
        import psutil
        self.proc, self.peak = psutil.Process(), 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def available(module: str | None, soda_python: str | None = None) -> str | None:
    """None when usable, else why not."""
    if module is None:
        return None
    if module == "soda":  # in its own virtualenv
        if not soda_python:
            return "no Soda virtualenv (--soda-python; python -m benchmarks.peers soda creates it)"
        return None if Path(soda_python).exists() else f"{soda_python} does not exist"
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install -e '.[bench]')"
    try:
        if module == "great_expectations":
            import great_expectations as gx
            if int(gx.__version__.split(".")[0]) != 1:
                return f"great_expectations {gx.__version__} is not 1.x"
        else:
            __import__(module)
    except Exception as e:  # noqa: BLE001
        return f"{module} cannot be imported: {type(e).__name__}: {e}"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", required=True, type=Path)
    p.add_argument("--date", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--repeat", type=int, default=3, help="runs of dq_assets and SQL (median)")
    p.add_argument("--soda-python", help="the python of the Soda virtualenv (benchmarks/peers.py)")
    p.add_argument("--work", type=Path, help="a directory for the Soda tool's files (default: next to --out)")
    args = p.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    tools = [t for t in args.tools.split(",") if t]

    t0 = time.perf_counter()
    inp = read_inputs(args.landing, args.date)
    inp.update(tables=tables, soda_python=args.soda_python,
               work=str(args.work or args.out.parent / (args.out.stem + "_work")))
    out: dict = {
        "date": args.date,
        "read_s": round(time.perf_counter() - t0, 3),
        "rows": {t: inp["raw"][t].num_rows for t in tables},
        "rules": {t: RULES[t] for t in tables},
        "tools": {}, "skipped": {}, "mismatches": [],
    }
    import psutil  # noqa: F401  (bench extra / dagster dependency)
    versions = {"duckdb": duckdb.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__}
    for tool in tools:
        fn, module = TOOLS[tool]
        why = available(module, args.soda_python)
        if why:
            out["skipped"][tool] = why
            print(f"check suite: skipping {tool}: {why}", flush=True)
            continue
        if module and module != "soda":
            versions[module] = __import__(module).__version__
        repeat = args.repeat if module is None else 1
        entry = {"tables": {}, "total_s": 0.0}
        with SelfRss() as rss:
            for table in tables:
                times, counts, extra = [], {}, {}
                try:
                    for _ in range(repeat):
                        gc.collect()
                        s = time.perf_counter()
                        counts, extra = fn(table, inp)
                        # a tool run elsewhere (Soda) reports its own time
                        times.append(extra.pop("timed_s", None) or time.perf_counter() - s)
                except Exception as e:  # noqa: BLE001 - reported as the tool's error
                    entry["error"] = f"{type(e).__name__}: {e}"[:1500]
                    print(f"check suite: {tool} FAILED on {table}: {entry['error']}", flush=True)
                    break
                med = statistics.median(times)
                entry["tables"][table] = {"s": round(med, 3), "runs_s": [round(x, 3) for x in times],
                                          "counts": counts, **extra}
                entry["total_s"] += med
                print(f"check suite: {tool:<18} {table:<12} {med:8.2f} s", flush=True)
        entry["total_s"] = round(entry["total_s"], 3)
        entry["peak_rss_mib"] = round(rss.peak / 2**20, 1)
        if tool == "soda" and _SODA.get("process"):  # its own process: its own peak
            entry.update(_SODA["process"])
            entry["peak_rss_mib"] = _SODA["process"]["peak_mib"]
            versions.update({("duckdb (soda venv)" if k == "duckdb" else k): v
                             for k, v in _SODA["result"].get("versions", {}).items()})
        if entry.get("error"):
            out["errors"] = {**out.get("errors", {}), tool: entry["error"]}
            continue
        out["tools"][tool] = entry
    out["versions"] = versions

    # The assertion: every tool, every rule, the same failing-row count as dq_assets.
    base = out["tools"].get("dq_assets")
    for table in tables:
        ref = base["tables"][table]["counts"] if base else None
        if ref is not None:
            extra_rules = sorted(k for k, v in ref.items() if v and k not in RULES[table])
            for k in extra_rules:
                out["mismatches"].append({"table": table, "rule": k, "tool": "dq_assets",
                                          "note": "failing rows for a rule this suite does not list",
                                          "dq_assets": ref[k]})
        for tool, entry in out["tools"].items():
            counts = entry["tables"][table]["counts"]
            for rule in RULES[table]:
                expect = (ref or {}).get(rule, 0)
                got = counts.get(rule, 0)
                if ref is not None and got != expect:
                    out["mismatches"].append({"table": table, "rule": rule, "tool": tool,
                                              "dq_assets": expect, "got": got})
        if ref is not None:
            out.setdefault("nonzero_rules", {})[table] = sum(1 for r in RULES[table] if ref.get(r))
    args.out.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    for m in out["mismatches"]:
        print(f"check suite: MISMATCH {m}", file=sys.stderr)
    return 1 if out["mismatches"] or out.get("errors") else 0  # a tool that failed did not agree


if __name__ == "__main__":
    sys.exit(main())

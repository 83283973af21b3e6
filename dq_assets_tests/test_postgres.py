"""The PostgreSQL backend against a real server: round trips through `dg.materialize`, the
single-transaction replace (even when the connection is killed mid-COPY), the quality store
next to the DuckDB one, connection errors, Secrets Manager, and no password in any log.

Server: see `pg_url` in pg_fixtures.py (DQ_TEST_PG_URL, this machine's, or an embedded one)."""


import logging
import re
import threading
import time
import traceback
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from psycopg.conninfo import conninfo_to_dict

from dq_assets.redaction import redact
from dq_assets.storage.duckdb.io_manager import WarehouseIOManager
from dq_assets.storage.duckdb.quality_store import DuckDBQualityStore
from dq_assets.storage.duckdb.warehouse import to_pandas
from dq_assets.storage.postgres.connection import (
    PostgresConnection,
    PostgresConnectionError,
    resolve_settings,
)
from dq_assets.storage.postgres.io_manager import PostgresIOManager
from dq_assets.storage.postgres.quality_store import PostgresQualityStore
from dq_assets.storage.postgres.tables import pg_type, read_table
from dq_assets_tests.pg_fixtures import create_secret, free_port, with_database

PASSWORD = "Pw-d0-not-LEAK-7f3a9"

# ------------------------------------------------------------------------------------------
# Small assets with every column type the warehouse uses
# ------------------------------------------------------------------------------------------

DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-05")  # 4 days
SINGLE_RUN = dg.BackfillPolicy.single_run()
UP_TO = dg.TimeWindowPartitionMapping(start_offset=-100_000, end_offset=0,
                                      allow_nonexistent_upstream_partitions=True)
PART = {"partition_expr": "ingest_date"}
RANGE_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

TYPED_SCHEMA = pa.schema([
    ("order_id", pa.string()),
    ("note", pa.string()),
    ("amount", pa.decimal128(38, 6)),
    ("placed_at", pa.timestamp("us", tz="UTC")),
    ("ingest_date", pa.date32()),
    ("qty", pa.int64()),
    ("paid", pa.bool_()),
    ("score", pa.float64()),
])
PG_TYPES = {"order_id": "text", "note": "text", "amount": "numeric(38,6)",
            "placed_at": "timestamp with time zone", "ingest_date": "date", "qty": "bigint",
            "paid": "boolean", "score": "double precision"}


def typed_frame(keys, version: int = 1) -> pd.DataFrame:
    rows = []
    for key in keys:
        day = date.fromisoformat(key)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
        rows += [
            {"order_id": f"{key}-a-v{version}", "note": 'quote " comma , newline \n ü', "amount": Decimal("12345678901234567890123456789012.123456"),
             "placed_at": noon + timedelta(microseconds=123456), "ingest_date": day, "qty": 2**62,
             "paid": True, "score": 0.1},
            {"order_id": f"{key}-b-v{version}", "note": "", "amount": Decimal("-0.000001"),
             "placed_at": noon - timedelta(hours=13), "ingest_date": day, "qty": -7,
             "paid": False, "score": 1e300},
            {"order_id": f"{key}-c-v{version}", "note": None, "amount": None, "placed_at": None,
             "ingest_date": day, "qty": None, "paid": None, "score": None},
        ][: 3 if version == 1 else 1]
    return to_pandas(pa.Table.from_pylist(rows, schema=TYPED_SCHEMA))


class TypedConfig(dg.Config):
    version: int = 1
    extra_column: bool = False


SEEN: dict[str, pd.DataFrame] = {}


@dg.asset(key=["staging", "typed"], partitions_def=DAILY, metadata=PART, backfill_policy=SINGLE_RUN)
def typed(context: dg.AssetExecutionContext, config: TypedConfig) -> pd.DataFrame:
    frame = typed_frame(context.partition_keys, config.version)
    if config.extra_column:
        frame["surprise"] = pd.Series([1] * len(frame), dtype=pd.ArrowDtype(pa.int64()))
    return frame


@dg.asset(key=["marts", "up_to"], partitions_def=DAILY, metadata=PART, backfill_policy=SINGLE_RUN,
          ins={"typed": dg.AssetIn(key=["staging", "typed"], partition_mapping=UP_TO)})
def up_to(context: dg.AssetExecutionContext, typed: pd.DataFrame) -> pd.DataFrame:
    SEEN["up_to"] = typed
    days = [date.fromisoformat(k) for k in context.partition_keys]
    return typed[typed["ingest_date"].isin(days)]


@dg.asset(key=["marts", "narrow"], partitions_def=DAILY, metadata=PART, backfill_policy=SINGLE_RUN,
          ins={"typed": dg.AssetIn(key=["staging", "typed"],
                                   metadata={"columns": ["order_id", "ingest_date"]})})
def narrow(typed: pd.DataFrame) -> pd.DataFrame:
    SEEN["narrow"] = typed
    return typed


@dg.asset(key=["marts", "everything"], ins={"typed": dg.AssetIn(key=["staging", "typed"])})
def everything(typed: pd.DataFrame) -> pd.DataFrame:
    SEEN["everything"] = typed
    return typed


@dg.asset(key=["staging", "nothing"], partitions_def=DAILY, metadata=PART)
def nothing() -> pd.DataFrame:
    return typed_frame([])


@dg.asset(key=["marts", "after_nothing"], ins={"nothing": dg.AssetIn(key=["staging", "nothing"])})
def after_nothing(nothing: pd.DataFrame) -> pd.DataFrame:
    SEEN["after_nothing"] = nothing
    return nothing


ASSETS = [typed, up_to, narrow, everything, nothing, after_nothing]


def pg_resources(url: str, **conn) -> dict:
    connection = PostgresConnection(url=url, connect_attempts=2, backoff_seconds=0.01, **conn)
    return {"io_manager": PostgresIOManager(connection=connection)}


def run(resources, selection, partition=None, first_last=None, config=None, raise_on_error=True):
    return dg.materialize(
        ASSETS, resources=resources, partition_key=partition,
        selection=[dg.AssetKey.from_user_string(k) for k in selection.split()],
        tags=dict(zip(RANGE_TAGS, first_last)) if first_last else None,
        run_config={"ops": {"staging__typed": {"config": config}}} if config else None,
        raise_on_error=raise_on_error,
    )


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("order_id").reset_index(drop=True)


def expected(keys, version=1) -> pd.DataFrame:
    return by_id(typed_frame(keys, version))


def run_error(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    return failures[0].step_failure_data.error.to_string()


def table_rows(url: str, schema: str, table: str) -> pd.DataFrame | None:
    with PostgresConnection(url=url).session() as conn:
        data = read_table(conn, schema, table)
    return None if data is None else by_id(to_pandas(data))


@pytest.fixture(autouse=True)
def _isolated(clean_pg_env):
    SEEN.clear()


# ------------------------------------------------------------------------------------------
# The IO manager
# ------------------------------------------------------------------------------------------

def _pipeline(resources) -> dict[str, pd.DataFrame]:
    """Two single partitions, a two-partition range (write and load), then an unpartitioned
    asset loading every partition."""
    SEEN.clear()
    run(resources, "staging/typed", partition="2025-01-01")
    run(resources, "staging/typed", partition="2025-01-02")
    run(resources, "staging/typed marts/up_to marts/narrow", first_last=("2025-01-03", "2025-01-04"))
    run(resources, "marts/everything")
    return dict(SEEN)


def test_round_trip_every_dtype_matches_duckdb(pg_database, tmp_path):
    seen = _pipeline(pg_resources(pg_database))
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]

    # Decimals exact, timestamps UTC, dates, nulls, empty strings: what went in comes out.
    pd.testing.assert_frame_equal(by_id(seen["up_to"]), expected(days))  # reaches back to day 1
    pd.testing.assert_frame_equal(by_id(seen["everything"]), expected(days))
    pd.testing.assert_frame_equal(by_id(seen["narrow"]), expected(days[2:])[["order_id", "ingest_date"]])
    assert by_id(seen["everything"])["amount"].tolist()[0] == Decimal("12345678901234567890123456789012.123456")
    assert str(seen["everything"]["placed_at"].dtype) == "timestamp[us, tz=UTC][pyarrow]"

    # The same loads through the DuckDB warehouse: identical dtypes and values.
    duck = _pipeline({"io_manager": WarehouseIOManager(database=str(tmp_path / "w.duckdb"))})
    for name, frame in seen.items():
        pd.testing.assert_frame_equal(by_id(frame), by_id(duck[name]))
        assert list(frame.dtypes) == list(duck[name].dtypes)

    # Tables: one schema per layer, column types from the Arrow schema.
    with psycopg.connect(pg_database) as conn:
        cols = dict(conn.execute(
            """SELECT column_name, CASE WHEN data_type = 'numeric'
                      THEN format('numeric(%s,%s)', numeric_precision, numeric_scale) ELSE data_type END
               FROM information_schema.columns WHERE table_schema = 'staging' AND table_name = 'typed'""").fetchall())
        assert cols == PG_TYPES
        tables = conn.execute("""SELECT table_schema || '.' || table_name FROM information_schema.tables
                                 WHERE table_schema IN ('staging', 'marts') ORDER BY 1""").fetchall()
        assert [t for (t,) in tables] == ["marts.everything", "marts.narrow", "marts.up_to", "staging.typed"]
        indexed = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'staging' "
                               "AND tablename = 'typed'").fetchall()
        assert [d for (d,) in indexed] == ["CREATE INDEX typed_ingest_date_idx ON staging.typed USING btree (ingest_date)"]


def test_rerun_replaces_only_its_partition_and_unpartitioned_replaces_all(pg_database):
    res = pg_resources(pg_database)
    run(res, "staging/typed", partition="2025-01-01")
    run(res, "staging/typed", partition="2025-01-02")
    run(res, "marts/everything")
    before = table_rows(pg_database, "staging", "typed")

    result = run(res, "staging/typed", partition="2025-01-01", config={"version": 2})
    mat = result.get_asset_materialization_events()[0].materialization
    assert mat.metadata["dagster/partition_row_count"].value == 1

    after = table_rows(pg_database, "staging", "typed")
    pd.testing.assert_frame_equal(after, by_id(pd.concat([expected(["2025-01-01"], 2), expected(["2025-01-02"])])))
    day2 = before["ingest_date"] == date(2025, 1, 2)
    pd.testing.assert_frame_equal(by_id(after[after["ingest_date"] == date(2025, 1, 2)]), by_id(before[day2]))

    run(res, "marts/everything")  # unpartitioned: the whole table is replaced, not appended to
    pd.testing.assert_frame_equal(table_rows(pg_database, "marts", "everything"), after)


def test_empty_frame_creates_table_and_loads_typed(pg_database):
    res = pg_resources(pg_database)
    run(res, "staging/nothing", partition="2025-01-01")
    run(res, "marts/after_nothing")
    loaded = SEEN["after_nothing"]
    assert len(loaded) == 0
    assert list(loaded.dtypes) == list(typed_frame([]).dtypes)
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'staging' "
                            "AND table_name = 'nothing'").fetchone()[0] == len(PG_TYPES)


def test_missing_table_and_changed_columns_fail_clearly(pg_database):
    res = pg_resources(pg_database)
    result = run(res, "marts/everything", raise_on_error=False)
    assert not result.success
    assert "staging.typed does not exist in the warehouse yet: materialize it first." in run_error(result)

    run(res, "staging/typed", partition="2025-01-01")
    before = table_rows(pg_database, "staging", "typed")
    result = run(res, "staging/typed", partition="2025-01-01", config={"extra_column": True}, raise_on_error=False)
    assert not result.success
    message = run_error(result)
    assert "staging.typed exists with columns" in message and "not in the table: ['surprise']" in message
    pd.testing.assert_frame_equal(table_rows(pg_database, "staging", "typed"), before)


def test_unsupported_identifiers_and_types_are_refused():
    from dq_assets.storage.postgres.tables import _qualified

    with pytest.raises(ValueError, match="not a valid SQL identifier"):
        _qualified("staging", 'x"; DROP TABLE y; --')
    with pytest.raises(TypeError, match="no PostgreSQL mapping"):
        pg_type(pa.list_(pa.int64()), "tags")


# ------------------------------------------------------------------------------------------
# A connection killed in the middle of the COPY
# ------------------------------------------------------------------------------------------

class BigConfig(dg.Config):
    rows: int


@dg.asset(key=["staging", "big"], partitions_def=DAILY, metadata=PART)
def big(context: dg.AssetExecutionContext, config: BigConfig) -> pd.DataFrame:
    n = config.rows
    table = pa.table({
        "n": pa.array(range(n), pa.int64()),
        "ingest_date": pa.array([date.fromisoformat(context.partition_key)] * n, pa.date32()),
        "payload": pa.array([f"row {i} of {n}" for i in range(n)], pa.string()),
    })
    return to_pandas(table)


BLOCK_KEY = 4242
BLOCK_AT_ROW = 100_000


def test_arrow_session_types_round_trip_and_a_rolled_back_ingest_leaves_nothing(pg_database):
    """Every warehouse type (NULLs, 38-digit decimals, timestamps at the edges) comes back with
    `.equals()`; a zero-row table keeps its typed columns; ADBC's COPY BINARY runs inside the
    session's transaction: visible to it, gone after a ROLLBACK."""
    from dq_assets.storage.postgres.tables import write_table
    utc = timezone.utc
    data = pa.table({
        "s": pa.array(["x", None, "", 'a,"b"\nc\\N', "é€😀"]),
        "n": pa.array([Decimal("123456789012345678.123456"), None, Decimal("-0.000001"), Decimal(0),
                       Decimal("12345678901234567890123456789012.123456")], pa.decimal128(38, 6)),
        "ts": pa.array([datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=utc), None,
                        datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=utc), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
                        datetime(2999, 12, 31, tzinfo=utc)], pa.timestamp("us", tz="UTC")),
        "d": pa.array([date(2025, 1, 1), None, date(1, 1, 1), date(9999, 12, 31), date(1969, 12, 31)]),
        "i": pa.array([1, None, -2**63, 2**63 - 1, 0], pa.int64()),
        "b": pa.array([True, None, False, True, False]),
        "f": pa.array([0.1, None, 1e308, -0.0, 1 / 3]),
    })
    with PostgresConnection(url=pg_database).session("testing") as conn:
        write_table(conn, "staging", "every", data)
        write_table(conn, "staging", "none", data.slice(0, 0))
        assert read_table(conn, "staging", "every").equals(data)
        assert read_table(conn, "staging", "none").equals(data.slice(0, 0))
        assert read_table(conn, "staging", "none", columns=["ts", "n"]).schema == data.select(["ts", "n"]).schema
        with pytest.raises(RuntimeError, match="roll back"), conn.transaction():
            write_table(conn, "staging", "every", data, replace=True)
            write_table(conn, "staging", "every", data)
            write_table(conn, "staging", "fresh", data)
            assert read_table(conn, "staging", "every").num_rows == 10  # the transaction sees its rows
            raise RuntimeError("roll back")
        assert read_table(conn, "staging", "every").equals(data)
        assert read_table(conn, "staging", "fresh") is None
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT count(*) FROM staging.every").fetchone() == (5,)


def _materialize_big(res, partition, rows, raise_on_error=True):
    return dg.materialize([big], resources=res, partition_key=partition, raise_on_error=raise_on_error,
                          run_config={"ops": {"staging__big": {"config": {"rows": rows}}}})


def _counts(url) -> dict:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT ingest_date::text, count(*) FROM staging.big GROUP BY 1").fetchall())


def test_connection_killed_mid_copy_keeps_previous_partition(pg_database):
    res = pg_resources(pg_database)
    _materialize_big(res, "2025-01-01", 1_000)
    _materialize_big(res, "2025-01-02", 10)
    assert _counts(pg_database) == {"2025-01-01": 1_000, "2025-01-02": 10}

    # Deterministic: row 100,000 of the COPY waits for an advisory lock this test holds, so the
    # writer is certainly inside the COPY (old partition already deleted in its transaction)
    # when it is terminated from a second connection.
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(
            f"""CREATE FUNCTION staging.wait_for_test() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_advisory_lock({BLOCK_KEY}); PERFORM pg_advisory_unlock({BLOCK_KEY});
                RETURN NEW; END $$""")
        admin.execute(f"""CREATE TRIGGER wait_for_test BEFORE INSERT ON staging.big FOR EACH ROW
                          WHEN (NEW.n = {BLOCK_AT_ROW}) EXECUTE FUNCTION staging.wait_for_test()""")
        admin.execute("SELECT pg_advisory_lock(%s)", [BLOCK_KEY])
        killed: dict = {}

        def killer():
            with psycopg.connect(pg_database, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    row = watcher.execute(
                        """SELECT l.pid, a.query FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                           WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s
                             AND NOT l.granted""", [BLOCK_KEY]).fetchone()
                    if row:
                        killed["query"] = row[1]
                        killed["terminated"] = watcher.execute("SELECT pg_terminate_backend(%s)", [row[0]]).fetchone()[0]
                        return
                    time.sleep(0.02)

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            result = _materialize_big(res, "2025-01-01", 300_000, raise_on_error=False)
        finally:
            thread.join()
            admin.execute("SELECT pg_advisory_unlock(%s)", [BLOCK_KEY])

        assert killed.get("terminated") is True and killed["query"].startswith("COPY")
        assert not result.success
        message = run_error(result)
        first = message.splitlines()[0]
        assert first.startswith("dq_assets.storage.postgres.connection.PostgresError: PostgreSQL at ")
        # The server's FATAL notice, or (if the client was blocked sending) libpq's own words.
        assert re.search(r"writing staging\.big failed: (terminating connection due to administrator "
                         r"command|server closed the connection unexpectedly)$", first), first
        # The failed write left both partitions as they were.
        assert _counts(pg_database) == {"2025-01-01": 1_000, "2025-01-02": 10}

        admin.execute("DROP TRIGGER wait_for_test ON staging.big")
    _materialize_big(res, "2025-01-01", 300_000)  # the rerun succeeds
    assert _counts(pg_database) == {"2025-01-01": 300_000, "2025-01-02": 10}


# ------------------------------------------------------------------------------------------
# The quality store, next to the DuckDB one
# ------------------------------------------------------------------------------------------

def _quality_batches():
    from dq_assets.checks.reporting import CHECK_RESULTS_SCHEMA, RECON_SUMMARY_SCHEMA
    from dq_assets.layers.staging import METRICS_SCHEMA, PROFILE_SCHEMA

    t0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)

    def check(run, pk, asset, name, passed, at, failing=0):
        return {"run_id": run, "partition_key": pk, "asset_key": asset, "check_name": name,
                "passed": passed, "severity": "ERROR" if not passed else "WARN",
                "failing_rows": failing, "observed": str(failing), "threshold": "0",
                "detail": None if passed else 'bad "rows"', "sample_keys": '["O1"]' if failing else None,
                "reproduce_sql": "SELECT 1", "suppressed_by": None, "evaluated_at": at}

    def profile(run, pk, table, raw, at, revenue, clean=Decimal("-0.000001")):
        return {"run_id": run, "partition_key": pk, "table_name": table, "raw_rows": raw,
                "staging_rows": raw - 1, "quarantined_rows": 1, "revenue_raw": revenue,
                "revenue_clean": clean, "profiled_at": at}

    def metric(run, pk, column, name, value, at, table="orders"):
        return {"run_id": run, "partition_key": pk, "table_name": table, "column_name": column,
                "metric": name, "value": value, "profiled_at": at}

    later = t0 + timedelta(hours=1)
    return [
        ("check_results", pa.Table.from_pylist([
            check("r1", "2025-01-01", "staging/orders", "not_null", False, t0, 3),
            check("r1", "2025-01-01", "staging/Orders", "unique", True, t0),
            check("r1", "2025-01-01", "staging/orders", "unique", True, t0),
            check("r1", "2025-01-02", "raw/orders", "manifest_rows", True, t0),
        ], schema=CHECK_RESULTS_SCHEMA)),
        ("check_results", pa.Table.from_pylist([
            check("r2", "2025-01-01", "staging/orders", "not_null", True, later),
            check("r2", "2025-01-03", "staging/orders", "not_null", False, later, 9),
        ], schema=CHECK_RESULTS_SCHEMA)),
        ("partition_profiles", pa.Table.from_pylist([
            profile("r1", "2025-01-01", "orders", 100, t0, Decimal("1234.500000")),
            profile("r1", "2025-01-02", "orders", 90, t0, None),
            profile("r1", "2025-01-01", "payments", 50, t0, Decimal("-0.000001")),
        ], schema=PROFILE_SCHEMA)),
        ("partition_profiles", pa.Table.from_pylist([
            profile("r2", "2025-01-01", "orders", 120, later, Decimal("99999999999999999999999999999999.999999")),
        ], schema=PROFILE_SCHEMA)),
        ("recon_summary", pa.Table.from_pylist([
            {"run_id": "r1", "partition_key": "2025-01-01", "check_name": "matches_staging",
             "metric": "revenue", "scope": "orders/EUR", "expected": "1.50", "observed": "1.49",
             "difference": Decimal("-0.010000"), "passed": False, "evaluated_at": t0},
        ], schema=RECON_SUMMARY_SCHEMA)),
        ("column_metrics", pa.Table.from_pylist([
            metric("r1", "2025-01-01", "*", "rows", 100.0, t0),
            metric("r1", "2025-01-01", "currency", "share:EUR", 1.0, t0),
            metric("r1", "2025-01-02", "*", "rows", 90.0, t0),
            metric("r1", "2025-01-02", "amount", "mean", 12.5, t0),
        ], schema=METRICS_SCHEMA)),
        ("column_metrics", pa.Table.from_pylist([  # 2025-01-01 again: only its latest profile counts
            metric("r2", "2025-01-01", "*", "rows", 120.0, later),
        ], schema=METRICS_SCHEMA)),
    ]


def test_quality_store_answers_like_duckdb(pg_database, tmp_path):
    pg = PostgresQualityStore(connection=PostgresConnection(url=pg_database))
    duck = DuckDBQualityStore(database=str(tmp_path / "q.duckdb"))
    keys = ["2025-01-01", "2025-01-02", "2025-01-03"]

    # Nothing stored yet.
    assert pg.latest_check_results(keys).equals(duck.latest_check_results(keys))
    assert pg.raw_rows_history("orders") == duck.raw_rows_history("orders") == {}
    assert pg.column_metrics("orders") == duck.column_metrics("orders") == []
    assert pg.latest_profiles(keys) == duck.latest_profiles(keys) == []

    batches = _quality_batches()
    for table, rows in batches:
        pg.append(table, rows)
        duck.append(table, rows)

    for subset in (keys, ["2025-01-01"], [], ["2025-01-09"]):
        got, want = pg.latest_check_results(subset), duck.latest_check_results(subset)
        assert got.schema == want.schema
        assert got.to_pylist() == want.to_pylist()  # same rows, same order
    assert pg.latest_check_results(["2025-01-01"]).num_rows == 3
    one = ("staging/orders", "not_null")  # the latest result of one check only
    got, want = pg.latest_check_results(keys, check=one), duck.latest_check_results(keys, check=one)
    assert got.to_pylist() == want.to_pylist()
    assert [(r["partition_key"], r["passed"]) for r in got.to_pylist()] == [("2025-01-01", True), ("2025-01-03", False)]
    assert pg.raw_rows_history("orders") == duck.raw_rows_history("orders") == {"2025-01-01": 120, "2025-01-02": 90}
    assert pg.raw_rows_history("nope") == {}

    def sort(rows):
        return sorted(rows, key=lambda r: (r["partition_key"], r["table_name"]))

    assert sort(pg.latest_profiles(keys)) == sort(duck.latest_profiles(keys))
    assert len(pg.latest_profiles(keys)) == 3

    def metrics(store, table):
        return sorted(tuple(r.values()) for r in store.column_metrics(table))

    assert metrics(pg, "orders") == metrics(duck, "orders") == [
        ("2025-01-01", "*", "rows", 120.0), ("2025-01-02", "*", "rows", 90.0), ("2025-01-02", "amount", "mean", 12.5)]
    assert pg.column_metrics("nope") == duck.column_metrics("nope") == []

    # Write marks: the latest per asset and partition, the same on both.
    for store in (pg, duck):
        store.mark_writes("r1", ["raw/orders", "staging/orders"], ["2025-01-01"])
        store.mark_writes("r2", ["raw/orders"], ["2025-01-01"])

    def marks(store):
        return sorted((w["asset_key"], w["partition_key"], w["run_id"]) for w in store.latest_writes(keys))

    assert marks(pg) == marks(duck) == [("raw/orders", "2025-01-01", "r2"), ("staging/orders", "2025-01-01", "r1")]
    assert pg.latest_writes(["2025-01-09"]) == duck.latest_writes(["2025-01-09"]) == []
    assert (pg.partitions_with_results(["staging/orders", "raw/orders", "raw/nope"], "2025-01-03")
            == duck.partitions_with_results(["staging/orders", "raw/orders", "raw/nope"], "2025-01-03")
            == {"staging/orders": {"2025-01-01"}, "raw/orders": {"2025-01-02"}, "raw/nope": set()})

    # Published tables: partitions replaced, the others kept; a table replaced as a whole.
    from dq_assets.storage.batches import PartitionBatches

    def day(d, n):
        return pa.table({"ingest_date": pa.array([date(2025, 1, d)] * n, pa.date32()),
                         "amount": pa.array([Decimal("1.50")] * n, pa.decimal128(38, 6))})

    def read(store, table):
        with store.publishing() as publication:
            return publication.read_table("marts", table)

    for store in (pg, duck):
        with store.publishing() as publication:
            publication.replace_partitions("marts", "things", "ingest_date",
                                           PartitionBatches(["2025-01-01", "2025-01-02"], lambda k: day(int(k[-1]), 2)))
        with store.publishing() as publication:
            publication.replace_partitions("marts", "things", "ingest_date",
                                           PartitionBatches(["2025-01-02"], lambda k: day(2, 1)))
            publication.replace_table("marts", "whole", day(3, 2))
        with store.publishing() as publication:
            publication.replace_table("marts", "whole", day(4, 1))
    for table in ("things", "whole"):
        got, want = read(pg, table), read(duck, table)
        assert sorted(got.to_pylist(), key=repr) == sorted(want.to_pylist(), key=repr)
    assert read(pg, "things").num_rows == 3 and read(pg, "whole").num_rows == 1
    assert read(pg, "nope") is None and read(duck, "nope") is None

    # Append-only: every row of every batch is still there; a batch with fewer columns appends too.
    from dq_assets.storage.quality_store import APPEND_ONLY_TABLES

    pg.append("check_results", batches[0][1].select(["run_id", "partition_key", "asset_key", "check_name", "evaluated_at"]))
    with psycopg.connect(pg_database) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM quality.{t}").fetchone()[0] for t in APPEND_ONLY_TABLES}
    assert counts == {"check_results": 10, "partition_profiles": 4, "recon_summary": 1, "column_metrics": 5,
                      "partition_writes": 3}


# ------------------------------------------------------------------------------------------
# Connection settings and errors
# ------------------------------------------------------------------------------------------

def test_wrong_password_is_one_clear_line_without_the_password(pg_auth_stub):
    conn = PostgresConnection(url=pg_auth_stub.url("dq", PASSWORD), connect_attempts=3, backoff_seconds=0.01)
    with pytest.raises(PostgresConnectionError) as info:
        with conn.connect():
            pass
    message = str(info.value)
    assert message == f'PostgreSQL at 127.0.0.1:{pg_auth_stub.port}/warehouse: password authentication failed for user "dq"'
    assert pg_auth_stub.passwords == [PASSWORD]  # sent once: a refused password is not retried
    text = "".join(traceback.format_exception(info.value))
    assert PASSWORD not in text
    assert "During handling" not in text and "OperationalError" not in text  # no chained driver error


def test_unreachable_port_retries_then_one_line(monkeypatch):
    port = free_port()
    monkeypatch.setenv("DQ_PG_URL", f"postgresql://dq:{PASSWORD}@127.0.0.1:{port}/warehouse")
    monkeypatch.setenv("DQ_PG_CONNECT_ATTEMPTS", "3")
    monkeypatch.setenv("DQ_PG_CONNECT_BACKOFF_SECONDS", "0.05")
    started = time.monotonic()
    with pytest.raises(PostgresConnectionError) as info:
        PostgresConnection().settings().connect()
    elapsed = time.monotonic() - started
    assert str(info.value) == f"PostgreSQL at 127.0.0.1:{port}/warehouse: Connection refused (after 3 attempts)"
    assert 0.15 <= elapsed < 5  # backoff 0.05 + 0.1 between the three attempts
    assert "\n" not in str(info.value) and PASSWORD not in str(info.value)


def test_settings_come_from_the_environment_at_use_time(pg_database, monkeypatch):
    conn = PostgresConnection()  # built before any variable is set
    info = conninfo_to_dict(pg_database)
    monkeypatch.setenv("PGHOST", info["host"])
    monkeypatch.setenv("PGPORT", str(info.get("port") or 5432))
    monkeypatch.setenv("PGUSER", info.get("user") or "postgres")
    monkeypatch.setenv("PGDATABASE", info["dbname"])
    monkeypatch.setenv("DQ_PG_SSLMODE", "disable")
    assert conn.settings().params["sslmode"] == "disable"
    with conn.connect() as c:
        assert c.execute("SELECT current_database(), current_setting('TimeZone')").fetchone() == (info["dbname"], "UTC")

    monkeypatch.setenv("DQ_PG_URL", with_database(pg_database, "postgres") + ("&" if "?" in pg_database else "?") + "sslmode=require")
    monkeypatch.delenv("DQ_PG_SSLMODE")
    assert resolve_settings().params["sslmode"] == "require"  # the URL's own mode
    monkeypatch.setenv("DQ_PG_SSLMODE", "sometimes")
    with pytest.raises(ValueError, match="DQ_PG_SSLMODE"):
        resolve_settings()


def _rds_secret(url: str, password: str) -> dict:
    info = conninfo_to_dict(url)
    return {"engine": "postgres", "host": info["host"], "port": int(info.get("port") or 5432),
            "username": info.get("user") or "postgres", "password": password, "dbname": info["dbname"]}


@pytest.fixture
def aws(aws_env):
    """The standard AWS environment pointing at the shared moto server (conftest.py)."""
    return aws_env


def test_secret_from_aws_secrets_manager(pg_database, aws, monkeypatch, pg_auth_stub):
    import uuid

    name = f"dq/pg/{uuid.uuid4().hex[:8]}"
    create_secret(aws, name, _rds_secret(pg_database, PASSWORD))  # trust auth ignores the password
    monkeypatch.setenv("DQ_PG_SECRET_ID", name)
    monkeypatch.setenv("DQ_PG_URL", "postgresql://nobody@127.0.0.1:1/not_this_one")  # the secret wins
    settings = PostgresConnection().settings()
    assert settings.source == f"secret {name}" and PASSWORD not in repr(settings)

    # Default-constructed resources, as in the aws resource map: everything from the env.
    run({"io_manager": PostgresIOManager()}, "staging/typed", partition="2025-01-01")
    run({"io_manager": PostgresIOManager()}, "marts/everything")
    pd.testing.assert_frame_equal(by_id(SEEN["everything"]), expected(["2025-01-01"]))
    store = PostgresQualityStore()
    store.append("partition_profiles", _quality_batches()[2][1])
    assert store.raw_rows_history("orders") == {"2025-01-01": 100, "2025-01-02": 90}

    # The secret's password is what is sent, and it is in no message.
    stub_name = f"dq/stub/{uuid.uuid4().hex[:8]}"
    create_secret(aws, stub_name, {"host": "127.0.0.1", "port": pg_auth_stub.port, "username": "rds_user",
                                   "password": PASSWORD, "dbname": "prod"})
    monkeypatch.setenv("DQ_PG_SECRET_ID", stub_name)
    with pytest.raises(PostgresConnectionError) as info:
        PostgresConnection(connect_attempts=2).settings().connect()
    assert str(info.value) == (f"PostgreSQL at 127.0.0.1:{pg_auth_stub.port}/prod: "
                               'password authentication failed for user "rds_user"')
    assert pg_auth_stub.passwords == [PASSWORD]

    monkeypatch.setenv("DQ_PG_SECRET_ID", "dq/does-not-exist")
    with pytest.raises(PostgresConnectionError, match="dq/does-not-exist"):
        PostgresConnection().settings()


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))


def test_password_never_appears_in_logs_or_errors(pg_database, pg_auth_stub, capfd):
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("psycopg").setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        instance = dg.DagsterInstance.ephemeral()
        refused = f"postgresql://dq:{PASSWORD}@127.0.0.1:{free_port()}/warehouse"
        cases = [refused, pg_auth_stub.url("dq", PASSWORD)]
        for url in cases:  # retried and refused connections, through a real run
            res = {"io_manager": PostgresIOManager(connection=PostgresConnection(
                url=url, connect_attempts=3, backoff_seconds=0.01))}
            result = dg.materialize(ASSETS, resources=res, selection="staging/typed", partition_key="2025-01-01",
                                    instance=instance, raise_on_error=False)
            assert not result.success
            texts.append(run_error(result))
            texts += [str(e.message) for e in instance.all_logs(result.run_id)]
            texts += [repr(r) for r in res.values()] + [repr(res["io_manager"].connection)]
            with pytest.raises(PostgresConnectionError) as info:
                res["io_manager"].connection.settings().connect()
            texts.append("".join(traceback.format_exception(info.value)))
        # A successful run with a password in the URL (trust auth accepts and ignores it).
        url = urlsplit(pg_database)
        with_password = urlunsplit(url._replace(
            netloc=f"{url.username or 'postgres'}:{PASSWORD}@{url.netloc.rpartition('@')[2]}"))
        result = dg.materialize(ASSETS, resources=pg_resources(with_password), selection="staging/typed",
                                partition_key="2025-01-01", instance=instance)
        texts += [str(e.message) for e in instance.all_logs(result.run_id)]
        texts.append(repr(resolve_settings(url=with_password)))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("psycopg").setLevel(logging.NOTSET)
    out, err = capfd.readouterr()
    everything = "\n".join(texts + handler.lines + [out, err])
    assert "Connection refused (after 3 attempts)" in everything  # the capture did see the failures
    assert "attempt 1 of 3, retrying" in everything  # ...and the retry warnings
    assert 'password authentication failed for user "dq"' in everything
    assert PASSWORD not in everything


def test_redact():
    assert redact(f"postgresql://u:{PASSWORD}@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact(f"host=h password={PASSWORD} user=u") == "host=h password=*** user=u"
    assert redact(f"host=h password='{PASSWORD} x' user=u") == "host=h password=*** user=u"
    assert redact(f'{{"username": "u", "password": "{PASSWORD}"}}') == '{"username": "u", "password": "***"}'
    assert redact(f"failed for {PASSWORD}", [PASSWORD]) == "failed for ***"
    assert redact("http://host:8080/path@x") == "http://host:8080/path@x"

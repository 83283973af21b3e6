"""Mart logic called directly on small frames: SCD2 history and current-state revenue."""

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa

from dq_assets.layers.marts import DIM_CUSTOMERS_SQL, REVENUE_BY_ORDER_DATE_SQL
from dq_assets.storage.duckdb.warehouse import query_tables, to_pandas

UTC = dt.timezone.utc


def ts(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2025, 1, day, hour, tzinfo=UTC)


def frame(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def dim_customers(versions: pa.Table) -> pd.DataFrame:
    return to_pandas(query_tables(DIM_CUSTOMERS_SQL, versions=versions))


def revenue_by_order_date(fact_orders: pa.Table) -> pd.DataFrame:
    return to_pandas(query_tables(REVENUE_BY_ORDER_DATE_SQL, fact_orders=fact_orders))


def version(cid, email, updated, received, line=2, country="DE"):
    return {"customer_id": cid, "email": email, "full_name": "N", "country_code": country,
            "signup_ts": ts(1), "updated_at": updated, "ingest_date": dt.date(2025, 1, received),
            "source_file": "customers.csv", "source_line": line}


def test_scd2_orders_versions_by_updated_at_even_when_they_arrive_late():
    versions = frame([
        version("C1", "a@x.de", ts(1), 1),
        version("C1", "c@x.de", ts(5), 5),
        version("C1", "b@x.de", ts(3), 6),  # late: belongs between the two
    ])
    rows = dim_customers(versions=versions).to_dict("records")
    assert [(r["email"], r["valid_from"].day, None if pd.isna(r["valid_to"]) else r["valid_to"].day, r["is_current"])
            for r in rows] == [("a@x.de", 1, 3, False), ("b@x.de", 3, 5, False), ("c@x.de", 5, None, True)]


def test_scd2_ignores_versions_that_change_nothing_and_resends_of_the_same_version():
    versions = frame([
        version("C1", "a@x.de", ts(1), 1),
        version("C1", "a@x.de", ts(2), 2),            # no change: not a new version
        version("C1", "a@x.de", ts(1), 3),            # the first version re-sent
        version("C1", "b@x.de", ts(4), 4, country="FR"),
    ])
    rows = dim_customers(versions=versions).to_dict("records")
    assert [(r["email"], r["valid_from"].day, r["is_current"]) for r in rows] == [
        ("a@x.de", 1, False), ("b@x.de", 4, True)]


def order(oid, status, amount, updated, received, order_day=1):
    return {"ingest_date": dt.date(2025, 1, received), "order_id": oid, "customer_id": "C1",
            "order_ts": ts(order_day, 10), "order_date": dt.date(2025, 1, order_day),
            "status": status, "currency": "EUR", "amount": Decimal(amount), "updated_at": updated}


def test_current_state_uses_the_newest_version_not_the_latest_arrival():
    facts = frame([
        order("O1", "placed", "10", ts(1, 10), 1),
        order("O1", "delivered", "12", ts(3), 3),
        order("O1", "paid", "11", ts(2), 4),       # stale re-send, arrives last
        order("O2", "cancelled", "5", ts(1), 1),
        order("O3", "paid", "7", ts(2), 2, order_day=2),
        order("O3", "paid", "7", ts(2), 5, order_day=2),  # identical re-send
    ])
    rows = revenue_by_order_date(fact_orders=facts).to_dict("records")
    assert [(r["order_date"].day, r["order_count"], r["revenue"]) for r in rows] == [
        (1, 2, Decimal("12")), (2, 1, Decimal("7"))]

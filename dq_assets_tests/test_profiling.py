"""Column profiles of a staging partition (asset metadata)."""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from dq_assets.contract.tables import table
from dq_assets.rules.profiling import column_profiles, profile_markdown
from dq_assets.storage.duckdb.warehouse import connect_duckdb


def test_profile_counts_nulls_distinct_values_and_ranges_of_one_partition():
    payments = table("payments")
    day, other = date(2025, 1, 1), date(2025, 1, 2)
    rows = {c: [None] * 4 for c in payments.column_names}
    rows["payment_id"] = ["P1", "P2", "P3", "P9"]
    rows["order_id"] = ["O1", "O1", None, "O9"]
    rows["amount"] = [Decimal("1.5"), Decimal("2.5"), Decimal("5"), Decimal("100")]
    types = {"amount": pa.decimal128(38, 6)}
    data = pa.table({**{c: pa.array(v, types.get(c)) for c, v in rows.items()},
                     "ingest_date": pa.array([day, day, day, other], pa.date32())})
    profiles = column_profiles(connect_duckdb(), payments, data, ["2025-01-01", "2025-01-02", "2025-01-03"])
    assert [p["rows"] for p in profiles["2025-01-02"]] == [1] * len(payments.columns)
    assert [p["rows"] for p in profiles["2025-01-03"]] == [0] * len(payments.columns)  # no rows
    profile = {p["column"]: p for p in profiles["2025-01-01"]}
    assert profile["payment_id"]["rows"] == 3 and profile["payment_id"]["distinct_values"] == 3
    assert (profile["order_id"]["nulls"], profile["order_id"]["distinct_values"]) == (1, 1)
    assert (profile["amount"]["min"], profile["amount"]["max"]) == ("1.500000", "5.000000")
    assert profile["amount"]["mean"] == "3.0"
    assert "| payment_id | id | 0 | 3 |" in profile_markdown(list(profile.values()))

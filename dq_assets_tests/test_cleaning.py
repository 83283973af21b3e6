"""Typing, normalisation, reject reasons and deduplication: `validate` called directly."""

import datetime as dt
from decimal import Context, Decimal, localcontext

import pyarrow as pa
import pytest

from dq_assets.contract.tables import REJECT_REASONS, table
from dq_assets.rules.cleaning import validate
from dq_assets.rules.values import trimmed
from dq_assets.storage.duckdb.warehouse import connect_duckdb

DAY = dt.date(2025, 1, 7)


def raw_table(name: str, rows: list[dict], day: dt.date = DAY) -> pa.Table:
    t = table(name)
    cols = {c: [r.get(c) for r in rows] for c in t.column_names}
    cols["extra_columns"] = [None] * len(rows)
    cols["ingest_date"] = [r.get("_day", day) for r in rows]
    cols["source_file"] = [t.file_name] * len(rows)
    cols["source_line"] = [i + 2 for i in range(len(rows))]
    return pa.table(
        {k: pa.array(v, pa.date32() if k == "ingest_date" else
                     pa.int64() if k == "source_line" else pa.string()) for k, v in cols.items()}
    )


def keys(*pairs) -> pa.Table:
    return pa.table({"key": [k for k, _ in pairs], "ingest_date": pa.array([d for _, d in pairs], pa.date32())})


def order(**kw) -> dict:
    row = {"order_id": "O1", "customer_id": "C1", "order_ts": "2025-01-07T10:00:00Z",
           "status": "paid", "currency": "EUR", "amount": "10.00",
           "updated_at": "2025-01-07T10:00:00Z"}
    row.update(kw)
    return row


def run(name: str, rows: list[dict], refs: dict | None = None):
    conn = connect_duckdb()
    if refs is None:
        refs = {c.name: keys(("C1", DAY), ("P1", DAY), ("O1", DAY))
                for c, _ in table(name).references}
    return validate(conn, table(name), raw_table(name, rows), refs)


def staged(name: str, rows: list[dict], **kw) -> list[dict]:
    return run(name, rows, **kw).staging.to_pylist()


def rejected(name: str, rows: list[dict], **kw) -> list[dict]:
    return run(name, rows, **kw).quarantine.to_pylist()


UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "spelling, expected",
    [
        ("2025-01-07T10:00:00Z", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07 10:00:00Z", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07t10:00:00z", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07T10:00:00", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),  # no zone = UTC
        ("2025-01-07 10:00:00", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07T10:00:00.5Z", dt.datetime(2025, 1, 7, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2025-01-07T10:00:00.123456789", dt.datetime(2025, 1, 7, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2025-01-07T12:30:00+02:30", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07T05:00:00-05:00", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
        ("2025-01-07 11:00:00.25+01:00", dt.datetime(2025, 1, 7, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2025-01-08T00:59:00+14:59", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),  # widest offset
        ("1736244000", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),  # epoch seconds
        ("  2025-01-07T10:00:00Z\t", dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)),
    ],
)
def test_every_accepted_timestamp_spelling_is_stored_as_utc(spelling, expected):
    [row] = staged("orders", [order(order_ts=spelling)])
    assert row["order_ts"] == expected


def test_timestamps_without_offset_are_utc_whatever_the_session_time_zone():
    conn = connect_duckdb()
    conn.execute("SET TimeZone = 'America/New_York'")
    raw = raw_table("orders", [order(order_ts="2025-01-07T10:00:00")])
    [row] = validate(conn, table("orders"), raw, {"customer_id": keys(("C1", DAY))}).staging.to_pylist()
    assert row["order_ts"] == dt.datetime(2025, 1, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "spelling",
    ["07/01/2025 10:00", "2025-01-07", "2025-01-07T10:00Z", "2025-02-30T10:00:00Z",
     "2025-01-07T10:00:00+0200", "2025-01-07T10:00:00+25:00", "2025-01-07T10:00:00+15:00",
     "2025-01-07T10:00:00+02:60", "2025-01-07T10:00:00.", "yesterday", "1.5e9"],
)
def test_other_timestamp_spellings_are_unparseable(spelling):
    [row] = rejected("orders", [order(order_ts=spelling)])
    assert row["reject_reason"] == "unparseable"
    assert row["order_ts"] == spelling  # the raw value as received


@pytest.mark.parametrize(
    "spelling, expected",
    [("10", "10"), ("10.5", "10.5"), (" 10.50 ", "10.50"), ("+3.25", "3.25"), (".75", "0.75"),
     ("0.000001", "0.000001"), ("1234567890123.45", "1234567890123.45"), ("7.1000000", "7.1"),
     ("999999999999999999.999999", "999999999999999999.999999"),  # the largest supported
     ("0" * 40 + "12.5", "12.5")],  # leading zeros are no digits of the value
)
def test_money_is_an_exact_decimal(spelling, expected):
    [row] = staged("orders", [order(amount=spelling)])
    assert isinstance(row["amount"], Decimal)
    assert row["amount"] == Decimal(expected)


@pytest.mark.parametrize("spelling", ["1,000.00", "€12", "12,50", "1e3", "12.5 EUR", "--1", ".", "+",
                                      "1.2.3", "١٢"])
def test_other_money_spellings_are_unparseable(spelling):
    [row] = rejected("orders", [order(amount=spelling)])
    assert row["reject_reason"] == "unparseable"


@pytest.mark.parametrize("spelling, why", [
    ("12.3456789", "more than 6 decimal places"),
    ("0.0000001", "more than 6 decimal places"),
    ("1000000000000000000", "10^18 or more in magnitude"),
    ("60000000000000000000000000000000", "10^18 or more in magnitude"),
    ("9" * 40, "10^18 or more in magnitude"),
    ("+1234567890123456789.1234567", "10^18 or more in magnitude"),
])
def test_a_decimal_beyond_the_supported_range_is_out_of_range_not_unparseable(spelling, why):
    """Valid money outside 18 integer digits and 6 decimal places is refused for what it is,
    with the bound it breaks, its line, and the value as sent."""
    [row] = rejected("orders", [order(amount=spelling)])
    assert (row["reject_reason"], row["reject_reasons"]) == ("out_of_range", "out_of_range")
    assert row["reject_details"] == f"amount: out_of_range ({why})"
    assert (row["amount"], row["source_line"]) == (spelling, 2)


def test_an_integer_beyond_the_supported_range_is_out_of_range_not_unparseable():
    item = {"order_id": "O1", "line_no": "1", "product_id": "P1", "quantity": "1",
            "unit_price": "1", "line_amount": "1"}
    [q] = rejected("order_items", [{**item, "quantity": "1" + "0" * 18}])
    assert q["reject_details"] == "quantity: out_of_range (10^18 or more in magnitude)"
    [q] = rejected("order_items", [{**item, "line_no": "-" + "9" * 30}])
    assert q["reject_details"] == "line_no: out_of_range (10^18 or more in magnitude)"
    [kept] = staged("order_items", [{**item, "line_no": "0" * 30 + "7"}])
    assert kept["line_no"] == 7
    ev = {"event_id": "E1", "session_id": "S", "event_type": "page_view", "customer_id": "",
          "event_ts": "2025-01-07T10:00:00Z", "platform": "web"}
    [q] = rejected("events", [{**ev, "duration_ms": "9" * 40}])
    assert q["reject_details"] == "duration_ms: out_of_range (10^18 or more in magnitude)"
    [q] = rejected("events", [{**ev, "duration_ms": "86400001"}])
    assert q["reject_details"] == "duration_ms: out_of_range (above 86400000)"
    assert rejected("events", [{**ev, "duration_ms": "1.5"}])[0]["reject_reason"] == "unparseable"


@pytest.mark.parametrize("column, spelling", [
    ("order_ts", "0000-06-01T00:00:00Z"), ("order_ts", "-99999999999"), ("updated_at", "-62135596801"),
])
def test_a_timestamp_before_year_one_is_out_of_range(column, spelling):
    """Year 0000 and large negative epochs are valid spellings of moments before year 1, which
    Python, pandas and most clients cannot hold: refused for that, with the bound."""
    [row] = rejected("orders", [order(**{column: spelling})])
    assert row["reject_details"] == f"{column}: out_of_range (before 0001-01-01T00:00:00Z)"
    [kept] = staged("orders", [order(**{column: "-62135596800"})])  # 0001-01-01T00:00:00Z
    assert kept[column].year == 1


def test_quantity_times_price_beyond_decimal_range_is_a_mismatch_not_an_overflow():
    """Both in range, their product need not be: 10^17 x 10^17 would overflow DECIMAL(38)."""
    item = {"order_id": "O1", "line_no": "1", "product_id": "P1", "quantity": "100000000000000000",
            "unit_price": "100000000000000000", "line_amount": "1"}
    items = [item, {**item, "line_no": "2", "quantity": "999999999999999999",
                    "unit_price": "-999999999999999999.999999"}]
    assert [(q["reject_reasons"], q["source_line"]) for q in rejected("order_items", items)] == [
        ("calculation_mismatch", 2), ("out_of_range,calculation_mismatch", 3)]
    assert staged("order_items", [{**item, "quantity": "1000", "unit_price": "999999999999999.999999",
                                   "line_amount": "999999999999999999.999"}])


def test_the_landed_money_total_counts_every_decimal_as_sent_exactly():
    """The manifest's control total (contract §1): out-of-range decimals count as sent, not 0,
    and no total overflows; only what is no decimal counts as 0."""
    from dq_assets.rules.values import money_sum

    values = ["12.3456789", " 60000000000000000000000000000000", "60000000000000000000000000000000\t",
              "1" + "0" * 60, "0." + "0" * 60 + "1", "-.5", "25.", "x", "1e3", None, "  "]
    rows = pa.table({"amount": pa.array(values, pa.string())})
    total = money_sum(connect_duckdb(), rows, "amount")
    with localcontext(Context(prec=200)):
        expected = (Decimal(10) ** 60 + 12 * Decimal(10) ** 31 + Decimal("12.3456789") + 25
                    - Decimal("0.5") + Decimal(10) ** -61)
    assert total == expected


def test_whitespace_and_case_are_normalised():
    [row] = staged("orders", [order(order_id="  O1 ", status=" PAID ", currency="eur ")])
    assert (row["order_id"], row["status"], row["currency"]) == ("O1", "paid", "EUR")
    [c] = staged("customers", [{"customer_id": " C1", "email": " Ann.B@Example.COM ",
                                "full_name": "  Ann B ", "country_code": "de",
                                "signup_ts": "2024-01-01T00:00:00Z",
                                "updated_at": "2025-01-07T00:00:00Z"}])
    assert (c["customer_id"], c["email"], c["full_name"], c["country_code"]) == (
        "C1", "ann.b@example.com", "Ann B", "DE")


def test_each_reject_reason():
    """One row per reason, in the contract's vocabulary."""
    cases = {
        "missing_required": ("orders", order(status="  ")),
        "unparseable": ("orders", order(amount="12,50")),
        "invalid_value": ("orders", order(status="pending")),
        "out_of_range": ("orders", order(amount="-1.00")),
        "future_timestamp": ("orders", order(order_ts="2025-01-08T01:00:01Z")),
        "unknown_reference": ("orders", order(customer_id="C404")),
    }
    for reason, (name, row) in cases.items():
        [q] = rejected(name, [row])
        assert (q["reject_reason"], q["reject_reasons"]) == (reason, reason), reason
    item = {"order_id": "O1", "line_no": "1", "product_id": "P1", "quantity": "3",
            "unit_price": "2.00", "line_amount": "6.01"}
    assert not rejected("order_items", [item])  # within 0.01
    [q] = rejected("order_items", [{**item, "line_amount": "6.02"}])
    assert q["reject_reason"] == "calculation_mismatch"
    [kept, dup] = run("orders", [order(), order()]).staging.to_pylist() + rejected("orders", [order(), order()])
    assert dup["reject_reason"] == "duplicate" and kept["source_line"] == 3
    assert set(REJECT_REASONS) == set(cases) | {"calculation_mismatch", "duplicate"}


def test_the_contract_and_the_cleaning_sql_agree_on_the_reject_reasons_of_every_table(monkeypatch):
    """`Table.reject_reasons` (what the checks and the catalog declare) is what the generated SQL
    can give, in the contract's order, for all six tables; a drift is refused."""
    from dq_assets.contract.tables import TABLES, Column
    from dq_assets.rules.cleaning import column_failures

    for t in TABLES:
        tested = {f.reason for f in column_failures(t)}
        assert t.row_reasons == tuple(r for r in REJECT_REASONS if r in tested), t.name
        assert t.reject_reasons == t.row_reasons + ("duplicate",), t.name
        for col in t.columns:
            assert col.reject_reasons == tuple(f.reason for f in column_failures(t) if f.column == col.name)
    assert table("orders").reject_reasons == (
        "missing_required", "unparseable", "invalid_value", "out_of_range", "future_timestamp",
        "unknown_reference", "duplicate")
    assert table("order_items").reject_reasons == (
        "missing_required", "unparseable", "out_of_range", "calculation_mismatch",
        "unknown_reference", "duplicate")
    monkeypatch.setattr(Column, "reject_reasons", property(lambda self: ("missing_required",)))
    with pytest.raises(AssertionError, match="orders.customer_id: cleaning tests"):
        column_failures(table("orders"))


def test_timestamps_up_to_one_hour_after_the_day_are_not_future():
    assert staged("orders", [order(order_ts="2025-01-08T01:00:00Z")])
    assert rejected("orders", [order(order_ts="2025-01-08T01:00:01Z")])


def test_no_timestamp_column_of_any_table_may_be_in_the_future():
    """Contract §2: order_ts, payment_ts, event_ts, signup_ts and updated_at alike."""
    future = "2025-01-08T01:00:01Z"
    cust = {"customer_id": "C1", "email": "a@x.de", "full_name": "A", "country_code": "DE",
            "signup_ts": "2024-01-01T00:00:00Z", "updated_at": "2025-01-07T00:00:00Z"}
    prod = {"product_id": "P1", "sku": "S", "product_name": "N", "category": "c",
            "unit_price": "1", "currency": "EUR", "updated_at": "2025-01-07T00:00:00Z"}
    event = {"event_id": "E1", "customer_id": "", "session_id": "S1", "event_type": "page_view",
             "event_ts": "2025-01-07T10:00:00Z", "platform": "web", "duration_ms": "10"}
    cases = [("customers", {**cust, "signup_ts": future}), ("customers", {**cust, "updated_at": future}),
             ("products", {**prod, "updated_at": future}), ("orders", order(updated_at=future)),
             ("events", {**event, "event_ts": future})]
    for name, row in cases:
        [q] = rejected(name, [row])
        assert q["reject_reason"] == "future_timestamp", (name, row)
    assert staged("events", [event]) and staged("customers", [cust]) and staged("products", [prod])


def test_several_reasons_are_listed_in_contract_order_and_the_first_is_reject_reason():
    [q] = rejected("orders", [order(customer_id="", currency="EURO", amount="-5", order_ts="x")])
    assert q["reject_reasons"] == "missing_required,unparseable,invalid_value,out_of_range"
    assert q["reject_reason"] == "missing_required"
    assert "currency: invalid_value" in q["reject_details"]


def test_enum_email_country_currency_rules():
    cust = {"customer_id": "C1", "full_name": "A", "signup_ts": "2024-01-01T00:00:00Z",
            "updated_at": "2025-01-07T00:00:00Z"}
    bad = [{**cust, "email": e, "country_code": "DE"} for e in ("a@b", "a b@c.de", "@x.de", "a@@x.de", "a@x..de")]
    bad += [{**cust, "email": "a@x.de", "country_code": c} for c in ("XX", "DEU", "D", "U5")]
    assert [q["reject_reason"] for q in rejected("customers", bad)] == ["invalid_value"] * len(bad)
    prod = {"product_id": "P1", "sku": "S", "product_name": "N", "category": "c",
            "unit_price": "1", "updated_at": "2025-01-07T00:00:00Z"}
    assert rejected("products", [{**prod, "currency": "EURO"}])[0]["reject_reason"] == "invalid_value"
    assert staged("products", [{**prod, "currency": "chf"}])[0]["currency"] == "CHF"


def test_payment_amount_rules_depend_on_status():
    pay = {"payment_id": "Y1", "order_id": "O1", "payment_ts": "2025-01-07T10:00:00Z",
           "method": "card", "currency": "EUR"}
    ok = [{**pay, "status": "failed", "amount": "0"}, {**pay, "payment_id": "Y2", "status": "captured", "amount": "0.01"}]
    assert len(staged("payments", ok)) == 2
    bad = [{**pay, "status": "captured", "amount": "0"}, {**pay, "payment_id": "Y2", "status": "refunded", "amount": "0.00"},
           {**pay, "payment_id": "Y3", "status": "failed", "amount": "-1"}, {**pay, "payment_id": "Y4", "method": "cash", "status": "captured", "amount": "1"}]
    assert [q["reject_reason"] for q in rejected("payments", bad)] == ["out_of_range", "out_of_range", "out_of_range", "invalid_value"]


def test_events_customer_is_nullable_but_must_resolve_when_given():
    ev = {"event_id": "E1", "session_id": "S", "event_type": "page_view",
          "event_ts": "2025-01-07T10:00:00Z", "platform": "web", "duration_ms": "5"}
    assert staged("events", [{**ev, "customer_id": "  "}])[0]["customer_id"] is None
    assert rejected("events", [{**ev, "customer_id": "C404"}])[0]["reject_reason"] == "unknown_reference"
    assert rejected("events", [{**ev, "customer_id": "C1", "duration_ms": "86400001"}])[0]["reject_reason"] == "out_of_range"
    assert staged("events", [{**ev, "customer_id": "C1", "duration_ms": "86400000"}])


def test_dedup_keeps_latest_updated_at_then_last_in_file():
    rows = [
        order(status="paid", updated_at="2025-01-07T12:00:00Z"),   # newest: kept
        order(status="placed", updated_at="2025-01-07T09:00:00Z"),  # older version
        order(order_id="O2", status="placed", updated_at="2025-01-07T09:00:00Z"),
        order(order_id="O2", status="paid", updated_at="2025-01-07T09:00:00Z"),  # tie: later line kept
    ]
    result = run("orders", rows)
    kept = {r["order_id"]: (r["status"], r["source_line"]) for r in result.staging.to_pylist()}
    assert kept == {"O1": ("paid", 2), "O2": ("paid", 5)}
    dups = result.quarantine.to_pylist()
    assert [(d["source_line"], d["reject_reason"]) for d in dups] == [(3, "duplicate"), (4, "duplicate")]
    assert "kept at line 2" in dups[0]["reject_details"]


def test_dedup_by_file_order_for_tables_without_updated_at():
    pay = {"payment_id": "Y1", "order_id": "O1", "payment_ts": "2025-01-07T10:00:00Z",
           "method": "card", "status": "captured", "currency": "EUR"}
    result = run("payments", [{**pay, "amount": "1.00"}, {**pay, "amount": "2.00"}])
    assert [r["amount"] for r in result.staging.to_pylist()] == [Decimal("2.00")]
    assert result.quarantine.num_rows == 1


def test_an_invalid_newer_version_does_not_remove_the_valid_one():
    result = run("orders", [order(), order(status="bogus", updated_at="2025-01-07T23:00:00Z")])
    assert [r["status"] for r in result.staging.to_pylist()] == ["paid"]
    assert [q["reject_reason"] for q in result.quarantine.to_pylist()] == ["invalid_value"]


def test_references_resolve_against_this_and_earlier_partitions_only():
    refs_for = lambda *pairs: {"customer_id": keys(*pairs)}  # noqa: E731
    earlier = refs_for(("C1", dt.date(2025, 1, 1)))
    later = refs_for(("C1", dt.date(2025, 1, 8)))
    assert staged("orders", [order()], refs=earlier)
    assert rejected("orders", [order()], refs=later)[0]["reject_reason"] == "unknown_reference"


def test_a_key_received_again_and_again_still_stages_each_row_once():
    again = keys(("C1", dt.date(2025, 1, 1)), ("C1", dt.date(2025, 1, 3)), ("C1", DAY), ("C1", DAY))
    result = run("orders", [order(), order(order_id="O2")], refs={"customer_id": again})
    assert sorted(r["order_id"] for r in result.staging.to_pylist()) == ["O1", "O2"]
    item = {"order_id": "O1", "line_no": "1", "product_id": "P1", "quantity": "1",
            "unit_price": "1", "line_amount": "1"}
    refs = {"order_id": keys(("O1", DAY), ("O1", DAY)), "product_id": keys(("P1", DAY), ("P1", DAY))}
    assert len(staged("order_items", [item], refs=refs)) == 1


def test_order_items_reference_orders_of_the_same_partition_only():
    item = {"order_id": "O1", "line_no": "1", "product_id": "P1", "quantity": "1",
            "unit_price": "1", "line_amount": "1"}
    same = {"order_id": keys(("O1", DAY)), "product_id": keys(("P1", dt.date(2025, 1, 1)))}
    earlier = {"order_id": keys(("O1", dt.date(2025, 1, 6))), "product_id": same["product_id"]}
    assert staged("order_items", [item], refs=same)
    assert rejected("order_items", [item], refs=earlier)[0]["reject_reason"] == "unknown_reference"


def test_every_raw_row_lands_exactly_once():
    rows = [order(), order(), order(order_id="O2", amount="x"), order(order_id="O3"),
            order(order_id="O4", customer_id="C404")]
    result = run("orders", rows)
    assert result.staging.num_rows + result.quarantine.num_rows == len(rows)
    lines = sorted(result.staging.column("source_line").to_pylist()
                   + result.quarantine.column("source_line").to_pylist())
    assert lines == [2, 3, 4, 5, 6]


def test_failure_stats_count_rows_per_reason_and_column():
    rows = [order(order_id="O2", amount="x", updated_at="y"), order(order_id="O3", amount="z")]
    stats = {(f["reason"], f["column"]): f["failing_rows"] for f in run("orders", rows).failures.to_pylist()}
    assert stats[("unparseable", "amount")] == 2
    assert stats[("unparseable", "updated_at")] == 1
    assert stats[("unparseable", "*")] == 2  # rows, not failures


@pytest.mark.parametrize(
    "value, expected",
    [("a", "a"), (" a", "a"), ("a\t", "a"), ("\r\n a b \n", "a b"), ("\t", None), ("", None),
     ("   ", None), (None, None), ("é ", "é"), (" \u00a0x", "\u00a0x"), ("a\tb", "a\tb"),
     ("a b", "a b"), ("\ta\tb ", "a\tb")],
)
def test_trimmed_strips_the_contract_whitespace_only(value, expected):
    conn = connect_duckdb()
    sql = f"SELECT {trimmed('v')} FROM (SELECT CAST(? AS VARCHAR) AS v)"
    assert conn.execute(sql, [value]).fetchall()[0][0] == expected

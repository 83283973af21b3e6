"""Cross-table reconciliation of a partition (contract §2), as set-based DuckDB SQL.

Row level, one row per mismatching key in `quality.recon_row_mismatches`:
- `order_amount_mismatch`: an order whose amount differs from the sum of its items'
  line_amount by more than 0.01 (orders with items in the partition; an order one of whose
  items was rejected for anything but `duplicate` is left out: its item set is incomplete,
  and the rejected item is already reported);
- `payment_unknown_order` (missing keys): a payment whose order was never received;
- `order_without_captured_payment` (extra keys): a paid, shipped or delivered order with no
  captured payment in this or an earlier partition.
"""

import pyarrow as pa

from dq_assets.rules.profiling import REVENUE_IN
from dq_assets.storage.duckdb.warehouse import query_tables

AMOUNT_TOLERANCE = "0.01"

RECONS = ("order_amount_mismatch", "payment_unknown_order", "order_without_captured_payment")

_ORDER_ITEMS_CTES = """
item_totals AS (
    SELECT ingest_date, order_id, sum(line_amount) AS items_total, count(*) AS items
    FROM items GROUP BY ALL
),
incomplete AS (  -- orders with an item rejected for a reason other than duplicate
    SELECT DISTINCT ingest_date, trim(order_id, ' \t\r\n') AS order_id FROM items_quarantine
    WHERE reject_reason <> 'duplicate' AND order_id IS NOT NULL
)
"""

CAPTURED_SQL = """
SELECT order_id, min(ingest_date) AS first_captured FROM payments
WHERE status = 'captured' GROUP BY ALL
"""

MISMATCH_SQL = f"""
WITH {_ORDER_ITEMS_CTES}
SELECT o.ingest_date, 'order_amount_mismatch' AS recon, 'orders' AS table_name,
       o.order_id AS key,
       'amount ' || o.amount || ' vs items ' || t.items_total || ' (' || t.items || ' items)' AS detail
FROM orders o JOIN item_totals t USING (ingest_date, order_id)
WHERE abs(o.amount - t.items_total) > {AMOUNT_TOLERANCE}
  AND NOT EXISTS (SELECT 1 FROM incomplete i WHERE i.ingest_date = o.ingest_date AND i.order_id = o.order_id)
UNION ALL
SELECT ingest_date, 'payment_unknown_order', 'payments', payment_id,
       'order ' || coalesce(order_id, '(blank)') || ' was never received'
FROM payments_quarantine
WHERE list_contains(string_split(reject_reasons, ','), 'unknown_reference')
  AND strpos(reject_details, 'order_id: unknown_reference') > 0
UNION ALL
SELECT o.ingest_date, 'order_without_captured_payment', 'orders', o.order_id,
       o.status || ' order of ' || o.amount || ' ' || o.currency || ' with no captured payment yet'
FROM orders o LEFT JOIN captured c ON c.order_id = o.order_id AND c.first_captured <= o.ingest_date
WHERE o.status IN {REVENUE_IN} AND c.order_id IS NULL
ORDER BY 1, 2, 4
"""


def first_captured(payments: pa.Table) -> pa.Table:
    """(order_id, first_captured): the first ingest date with a captured payment per order,
    from payments of this and every earlier partition (order_id, status, ingest_date)."""
    return query_tables(CAPTURED_SQL, payments=payments)


def row_mismatches(
    orders: pa.Table,
    items: pa.Table,
    items_quarantine: pa.Table,
    captured: pa.Table,
    payments_quarantine: pa.Table,
) -> pa.Table:
    """`orders`, `items` and the quarantines cover the partition(s); `captured` is
    `first_captured` of the payments up to the partition(s)."""
    return query_tables(MISMATCH_SQL, orders=orders, items=items, items_quarantine=items_quarantine,
                        captured=captured, payments_quarantine=payments_quarantine)


# Metric level: the amounts of the orders that have (complete) items vs their items' total.
AMOUNT_TOTALS_SQL = f"""
WITH {_ORDER_ITEMS_CTES}
SELECT o.ingest_date, count(*) AS orders, sum(t.items_total) AS items_total, sum(o.amount) AS orders_total
FROM orders o JOIN item_totals t USING (ingest_date, order_id)
WHERE NOT EXISTS (SELECT 1 FROM incomplete i WHERE i.ingest_date = o.ingest_date AND i.order_id = o.order_id)
GROUP BY ALL ORDER BY 1
"""


def amount_totals(orders: pa.Table, items: pa.Table, items_quarantine: pa.Table) -> dict:
    """ingest_date -> (orders compared, items total, orders total)."""
    totals = query_tables(AMOUNT_TOTALS_SQL, orders=orders, items=items, items_quarantine=items_quarantine)
    return {r["ingest_date"]: (r["orders"], r["items_total"], r["orders_total"]) for r in totals.to_pylist()}

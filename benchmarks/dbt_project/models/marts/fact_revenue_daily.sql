{{ config(alias='fact_revenue_daily') }}
-- Per ingest date, order date (UTC) and currency: the distinct orders staged in the partition
-- and the revenue of those paid, shipped or delivered (contract §4).
SELECT ingest_date, CAST(timezone('UTC', order_ts) AS DATE) AS order_date, currency,
       count(DISTINCT order_id) AS order_count,
       coalesce(sum(amount) FILTER (WHERE status IN ('paid', 'shipped', 'delivered')), 0) AS revenue
FROM {{ ref('stg_orders') }}
WHERE ingest_date = DATE '{{ var("ingest_date") }}'
GROUP BY ALL

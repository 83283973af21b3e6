-- Nothing lost: every raw row of the day is in staging or in quarantine, per table.
{% for t in ['customers', 'products', 'orders', 'order_items', 'payments', 'events'] %}
SELECT '{{ t }}' AS tbl, r.n AS raw_rows, s.n AS staged, q.n AS quarantined
FROM (SELECT count(*) AS n FROM {{ ref('raw_' ~ t) }} WHERE ingest_date = DATE '{{ var("ingest_date") }}') r,
     (SELECT count(*) AS n FROM {{ ref('stg_' ~ t) }} WHERE ingest_date = DATE '{{ var("ingest_date") }}') s,
     (SELECT count(*) AS n FROM {{ ref('quarantine_' ~ t) }} WHERE ingest_date = DATE '{{ var("ingest_date") }}') q
WHERE r.n <> s.n + q.n
{{ 'UNION ALL' if not loop.last }}
{% endfor %}

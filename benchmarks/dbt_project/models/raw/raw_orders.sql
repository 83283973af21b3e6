{{ config(alias='orders') }}
-- The day's landed file as sent: every value text, untrimmed, with its line and ingest date.
SELECT *, row_number() OVER () AS _line, DATE '{{ var("ingest_date") }}' AS ingest_date
FROM read_csv('{{ var("landing") }}/ingest_date={{ var("ingest_date") }}/orders.csv',
              header = true, all_varchar = true, auto_detect = true)

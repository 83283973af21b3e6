{# The model holds at most `ratio` of the raw rows of the day (quarantine > 5% is an error). #}
{% test share_of_raw_below(model, raw_model, ratio) %}
SELECT q.n, r.n AS raw_rows
FROM (SELECT count(*) AS n FROM {{ model }} WHERE ingest_date = DATE '{{ var("ingest_date") }}') q,
     (SELECT count(*) AS n FROM {{ raw_model }} WHERE ingest_date = DATE '{{ var("ingest_date") }}') r
WHERE q.n > {{ ratio }} * r.n
{% endtest %}

{# Any row at all fails (used with severity warn on the quarantine: "any quarantined row"). #}
{% test no_rows(model) %}
SELECT * FROM {{ model }} WHERE ingest_date = DATE '{{ var("ingest_date") }}'
{% endtest %}

{# Rows for which the SQL expression is not true (a row rule across columns). #}
{% test expression_is_true(model, expression, column_name=none, where_clause="true") %}
SELECT * FROM {{ model }} WHERE ({{ where_clause }}) AND NOT coalesce(({{ expression }}), false)
{% endtest %}

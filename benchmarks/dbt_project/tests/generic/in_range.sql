{# Rows whose value lies outside [min_value, max_value] (either bound optional; NULL passes). #}
{% test in_range(model, column_name, min_value=none, max_value=none) %}
SELECT * FROM {{ model }}
WHERE {% if min_value is not none %}{{ column_name }} < {{ min_value }}{% else %}false{% endif %}
   OR {% if max_value is not none %}{{ column_name }} > {{ max_value }}{% else %}false{% endif %}
{% endtest %}

{#- The contract of docs/contract.md §2, as data for the models (dq_assets/contract/tables.py
    in Jinja): columns with kind, nullability, accepted values, range, not-in-the-future and
    reference (table, scope); keys; the version column for deduplication; row rules. -#}
{% macro contract() %}
  {%- set ts = {'kind': 'timestamp', 'not_future': true} -%}
  {%- do return({
    'customers': {'key': ['customer_id'], 'version': 'updated_at', 'columns': [
        {'name': 'customer_id', 'kind': 'id'}, {'name': 'email', 'kind': 'email'},
        {'name': 'full_name', 'kind': 'text'}, {'name': 'country_code', 'kind': 'country'},
        dict(ts, name='signup_ts'), dict(ts, name='updated_at')]},
    'products': {'key': ['product_id'], 'version': 'updated_at', 'columns': [
        {'name': 'product_id', 'kind': 'id'}, {'name': 'sku', 'kind': 'text'},
        {'name': 'product_name', 'kind': 'text'}, {'name': 'category', 'kind': 'text'},
        {'name': 'unit_price', 'kind': 'decimal', 'min': 0}, {'name': 'currency', 'kind': 'currency'},
        dict(ts, name='updated_at')]},
    'orders': {'key': ['order_id'], 'version': 'updated_at', 'columns': [
        {'name': 'order_id', 'kind': 'id'},
        {'name': 'customer_id', 'kind': 'id', 'ref': ['customers', 'up_to_partition']},
        dict(ts, name='order_ts'),
        {'name': 'status', 'kind': 'enum', 'values': ['placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded']},
        {'name': 'currency', 'kind': 'currency'}, {'name': 'amount', 'kind': 'decimal', 'min': 0},
        dict(ts, name='updated_at')]},
    'order_items': {'key': ['order_id', 'line_no'], 'version': none, 'columns': [
        {'name': 'order_id', 'kind': 'id', 'ref': ['orders', 'same_partition']},
        {'name': 'line_no', 'kind': 'integer'},
        {'name': 'product_id', 'kind': 'id', 'ref': ['products', 'up_to_partition']},
        {'name': 'quantity', 'kind': 'integer', 'min': 1}, {'name': 'unit_price', 'kind': 'decimal', 'min': 0},
        {'name': 'line_amount', 'kind': 'decimal'}],
      'rules': [{'reason': 'calculation_mismatch', 'columns': ['quantity', 'unit_price', 'line_amount'],
                 'fails_when': 'abs(line_amount - quantity * unit_price) > 0.01'}]},
    'payments': {'key': ['payment_id'], 'version': none, 'columns': [
        {'name': 'payment_id', 'kind': 'id'},
        {'name': 'order_id', 'kind': 'id', 'ref': ['orders', 'up_to_partition']},
        dict(ts, name='payment_ts'),
        {'name': 'method', 'kind': 'enum', 'values': ['card', 'paypal', 'bank_transfer', 'gift_card']},
        {'name': 'status', 'kind': 'enum', 'values': ['captured', 'failed', 'refunded']},
        {'name': 'amount', 'kind': 'decimal', 'min': 0}, {'name': 'currency', 'kind': 'currency'}],
      'rules': [{'reason': 'out_of_range', 'columns': ['status', 'amount'],
                 'fails_when': "status IN ('captured', 'refunded') AND amount <= 0"}]},
    'events': {'key': ['event_id'], 'version': none, 'columns': [
        {'name': 'event_id', 'kind': 'id'},
        {'name': 'customer_id', 'kind': 'id', 'nullable': true, 'ref': ['customers', 'up_to_partition']},
        {'name': 'session_id', 'kind': 'id'},
        {'name': 'event_type', 'kind': 'enum', 'values': ['page_view', 'add_to_cart', 'checkout', 'purchase']},
        dict(ts, name='event_ts'),
        {'name': 'platform', 'kind': 'enum', 'values': ['web', 'ios', 'android']},
        {'name': 'duration_ms', 'kind': 'integer', 'min': 0, 'max': 86400000}]},
  }) -%}
{% endmacro %}

{% macro reject_reasons() %}
  {%- do return(['missing_required', 'unparseable', 'invalid_value', 'out_of_range',
                 'future_timestamp', 'calculation_mismatch', 'unknown_reference', 'duplicate']) -%}
{% endmacro %}

{#- Value spellings (contract §2), as in benchmarks/check_suite.py. -#}
{% macro txt(x) %}NULLIF(trim({{ x }}, ' ' || chr(9) || chr(13) || chr(10)), ''){% endmacro %}
{% macro as_dec(x) %}(CASE WHEN regexp_full_match({{ x }}, '[+-]?(?:\d{1,32}(?:\.\d{0,6}0*)?|\.\d{1,6}0*)') THEN TRY_CAST({{ x }} AS DECIMAL(38,6)) END){% endmacro %}
{% macro as_int(x) %}(CASE WHEN regexp_full_match({{ x }}, '[+-]?\d{1,18}') THEN TRY_CAST({{ x }} AS BIGINT) END){% endmacro %}
{% macro as_ts(x) %}(CASE
    WHEN regexp_full_match({{ x }}, '\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-](?:0\d|1[0-4]):[0-5]\d)?') THEN TRY_CAST(upper({{ x }}) AS TIMESTAMPTZ)
    WHEN regexp_full_match({{ x }}, '-?\d{1,11}') THEN to_timestamp(CAST({{ x }} AS BIGINT)) END){% endmacro %}

{% macro typed(col, x) %}
  {%- if col.kind == 'decimal' -%}{{ as_dec(x) }}
  {%- elif col.kind == 'integer' -%}{{ as_int(x) }}
  {%- elif col.kind == 'timestamp' -%}{{ as_ts(x) }}
  {%- elif col.kind == 'email' -%}(CASE WHEN regexp_full_match({{ x }}, '[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+') THEN lower({{ x }}) END)
  {%- elif col.kind == 'country' -%}(CASE WHEN upper({{ x }}) IN (SELECT code FROM {{ ref('iso_countries') }}) THEN upper({{ x }}) END)
  {%- elif col.kind == 'currency' -%}(CASE WHEN upper({{ x }}) IN (SELECT code FROM {{ ref('iso_currencies') }}) THEN upper({{ x }}) END)
  {%- elif col.kind == 'enum' -%}(CASE WHEN lower({{ x }}) IN ('{{ col['values'] | join("', '") }}') THEN lower({{ x }}) END)
  {%- else -%}{{ x }}{%- endif -%}
{% endmacro %}

{#- Every row of the day's raw table, typed, with its reject reasons in the contract's order and
    the first of them (NULL: the row is staged). Duplicates: among rows with no other reason, the
    older versions of a key (by the version column, then by file line). -#}
{% macro checked(table) %}
{%- set t = contract()[table] -%}
{%- set conds = {} -%}
{%- for r in reject_reasons() %}{% do conds.update({r: []}) %}{% endfor -%}
{%- for c in t.columns -%}
  {%- set v = 't_' ~ c.name -%}{%- set x = 'v_' ~ c.name -%}
  {%- if not c.get('nullable') %}{% do conds['missing_required'].append(v ~ ' IS NULL') %}{% endif -%}
  {%- if c.kind in ['decimal', 'integer', 'timestamp'] %}{% do conds['unparseable'].append(v ~ ' IS NOT NULL AND ' ~ x ~ ' IS NULL') %}{% endif -%}
  {%- if c.kind in ['email', 'country', 'currency', 'enum'] %}{% do conds['invalid_value'].append(v ~ ' IS NOT NULL AND ' ~ x ~ ' IS NULL') %}{% endif -%}
  {%- if c.get('min') is not none %}{% do conds['out_of_range'].append('coalesce(' ~ x ~ ' < ' ~ c.min ~ ', false)') %}{% endif -%}
  {%- if c.get('max') is not none %}{% do conds['out_of_range'].append('coalesce(' ~ x ~ ' > ' ~ c.max ~ ', false)') %}{% endif -%}
  {%- if c.get('not_future') %}{% do conds['future_timestamp'].append('coalesce(' ~ x ~ " > CAST(ingest_date AS TIMESTAMPTZ) + INTERVAL 25 HOUR, false)") %}{% endif -%}
  {%- if c.get('ref') %}{% do conds['unknown_reference'].append(v ~ ' IS NOT NULL AND k_' ~ c.name ~ ' IS NULL') %}{% endif -%}
{%- endfor -%}
{%- for rule in t.get('rules', []) -%}
  {%- set ready = [] -%}{%- for c in rule.columns %}{% do ready.append('v_' ~ c ~ ' IS NOT NULL') %}{% endfor -%}
  {%- set ns = namespace(expr=rule.fails_when) -%}
  {%- for c in rule.columns %}{% set ns.expr = ns.expr | replace(c, 'v_' ~ c) %}{% endfor -%}
  {%- do conds[rule.reason].append('coalesce(' ~ ready | join(' AND ') ~ ' AND (' ~ ns.expr ~ '), false)') -%}
{%- endfor %}
WITH raw AS (
    SELECT * FROM {{ ref('raw_' ~ table) }} WHERE ingest_date = DATE '{{ var("ingest_date") }}'
), t AS (
    SELECT _line, ingest_date,
        {%- for c in t.columns %}
        "{{ c.name }}" AS raw_{{ c.name }}, {{ txt('"' ~ c.name ~ '"') }} AS t_{{ c.name }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM raw
), v AS (
    SELECT t.*
        {%- for c in t.columns %}, {{ typed(c, 't_' ~ c.name) }} AS v_{{ c.name }}{% endfor %}
    FROM t
), j AS (
    SELECT v.*{% for c in t.columns if c.get('ref') %}, k_{{ c.name }}.key AS k_{{ c.name }}{% endfor %}
    FROM v
    {%- for c in t.columns if c.get('ref') %}
    {%- if c.ref[1] == 'up_to_partition' %}
    LEFT JOIN (SELECT key, min(ingest_date) AS since FROM {{ ref('keys_' ~ c.ref[0]) }} GROUP BY key) k_{{ c.name }}
        ON k_{{ c.name }}.key = v.t_{{ c.name }} AND k_{{ c.name }}.since <= v.ingest_date
    {%- else %}
    LEFT JOIN {{ ref('keys_' ~ c.ref[0]) }} k_{{ c.name }}
        ON k_{{ c.name }}.key = v.t_{{ c.name }} AND k_{{ c.name }}.ingest_date = v.ingest_date
    {%- endif %}
    {%- endfor %}
), r AS (
    SELECT j.*, list_filter([
        {%- for reason in reject_reasons() if conds[reason] %}
        CASE WHEN {{ conds[reason] | map('string') | join(' OR ') }} THEN '{{ reason }}' END{{ ',' if not loop.last }}
        {%- endfor %}
    ], lambda x: x IS NOT NULL) AS _reasons
    FROM j
), d AS (
    SELECT r.*, CASE WHEN len(_reasons) = 0 THEN row_number() OVER (
        PARTITION BY len(_reasons) = 0, {% for k in t.key %}v_{{ k }}{{ ', ' if not loop.last }}{% endfor %}
        ORDER BY {% if t.version %}v_{{ t.version }} DESC, {% endif %}_line DESC) END AS _version_rank
    FROM r
)
SELECT * EXCLUDE (_reasons, _version_rank),
    CASE WHEN _version_rank > 1 THEN list_append(_reasons, 'duplicate') ELSE _reasons END AS reject_reasons,
    CASE WHEN _version_rank > 1 THEN 'duplicate' ELSE _reasons[1] END AS reject_reason
FROM d
{% endmacro %}

{#- Staging: the typed, deduplicated rows. Quarantine: the others, as sent, with their reasons. -#}
{% macro staged(table) %}
SELECT ingest_date{% for c in contract()[table].columns %}, v_{{ c.name }} AS {{ c.name }}{% endfor %}
FROM {{ ref('checked_' ~ table) }}
WHERE reject_reason IS NULL
{% endmacro %}

{% macro quarantined(table) %}
SELECT ingest_date, _line AS source_line, reject_reason, reject_reasons
    {%- for c in contract()[table].columns %}, raw_{{ c.name }} AS {{ c.name }}{% endfor %}
FROM {{ ref('checked_' ~ table) }}
WHERE reject_reason IS NOT NULL
{% endmacro %}

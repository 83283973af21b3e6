{{ config(alias='orders_quarantine') }}
{{ quarantined('orders') }}

{{ config(alias='order_items_quarantine') }}
{{ quarantined('order_items') }}

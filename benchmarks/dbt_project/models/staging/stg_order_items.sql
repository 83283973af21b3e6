{{ config(alias='order_items') }}
{{ staged('order_items') }}

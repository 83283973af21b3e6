{{ config(materialized='table', schema='work', alias='order_items_checked') }}
{{ checked('order_items') }}

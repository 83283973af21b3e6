{{ config(materialized='table', schema='work', alias='orders_checked') }}
{{ checked('orders') }}

{{ config(materialized='table', schema='work', alias='products_checked') }}
{{ checked('products') }}

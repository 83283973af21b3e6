{{ config(materialized='table', schema='work', alias='customers_checked') }}
{{ checked('customers') }}

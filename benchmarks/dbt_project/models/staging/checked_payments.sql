{{ config(materialized='table', schema='work', alias='payments_checked') }}
{{ checked('payments') }}

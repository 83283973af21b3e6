{{ config(materialized='table', schema='work', alias='events_checked') }}
{{ checked('events') }}

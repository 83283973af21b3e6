{{ config(materialized='view', schema='work', alias='orders_keys') }}
-- The keys of orders received so far (every partition's raw rows), for the references to it.
SELECT DISTINCT {{ txt('"order_id"') }} AS key, ingest_date
FROM {{ ref('raw_orders') }}
WHERE {{ txt('"order_id"') }} IS NOT NULL

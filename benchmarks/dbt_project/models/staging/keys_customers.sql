{{ config(materialized='view', schema='work', alias='customers_keys') }}
-- The keys of customers received so far (every partition's raw rows), for the references to it.
SELECT DISTINCT {{ txt('"customer_id"') }} AS key, ingest_date
FROM {{ ref('raw_customers') }}
WHERE {{ txt('"customer_id"') }} IS NOT NULL

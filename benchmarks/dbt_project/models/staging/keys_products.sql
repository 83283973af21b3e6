{{ config(materialized='view', schema='work', alias='products_keys') }}
-- The keys of products received so far (every partition's raw rows), for the references to it.
SELECT DISTINCT {{ txt('"product_id"') }} AS key, ingest_date
FROM {{ ref('raw_products') }}
WHERE {{ txt('"product_id"') }} IS NOT NULL

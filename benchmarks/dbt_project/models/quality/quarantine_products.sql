{{ config(alias='products_quarantine') }}
{{ quarantined('products') }}

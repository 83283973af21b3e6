{{ config(alias='products') }}
{{ staged('products') }}

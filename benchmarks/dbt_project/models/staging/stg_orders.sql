{{ config(alias='orders') }}
{{ staged('orders') }}

{{ config(alias='customers') }}
{{ staged('customers') }}

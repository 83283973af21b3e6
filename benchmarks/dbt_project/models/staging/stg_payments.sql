{{ config(alias='payments') }}
{{ staged('payments') }}

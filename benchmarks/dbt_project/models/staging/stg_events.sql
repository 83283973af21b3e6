{{ config(alias='events') }}
{{ staged('events') }}

{{ config(alias='customers_quarantine') }}
{{ quarantined('customers') }}

{{ config(alias='payments_quarantine') }}
{{ quarantined('payments') }}

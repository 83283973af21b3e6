{{ config(alias='events_quarantine') }}
{{ quarantined('events') }}

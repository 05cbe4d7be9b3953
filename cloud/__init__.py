"""Cloud service: ingest, live state, archive, rules, alerts, API."""

"""The only place that knows SQL: tables, migrations and the repository."""

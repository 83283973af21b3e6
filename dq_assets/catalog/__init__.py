"""What each asset's page in the UI tells a user about its table.

- `docs`   the declared tables: columns, types, descriptions and rules of every table asset
           (`table_docs`), and the column schema a step that writes a table reports.
- `apply`  `with_catalog`, applied once in definitions.py: column schemas, SQL table names,
           kinds, owners and code references on every asset, and the column-schema-change
           checks on staging and marts.
"""

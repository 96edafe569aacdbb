"""Identity resolution helpers: load any CSV of people records, resolve them with the
dbt identity models (models/intermediate/identity), read back record -> customer_id."""

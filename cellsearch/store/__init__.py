"""The search store: one SQLite file, its whole schema and every SQL statement, and the doctor
that recovers a damaged one. Imports no JAX."""

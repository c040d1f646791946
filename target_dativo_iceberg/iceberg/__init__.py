"""Iceberg tables: catalogs, commits, files, row operations, schema evolution, partitions, markers."""

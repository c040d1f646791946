"""Singer target that lands data in Apache Iceberg under ODCS data contracts."""

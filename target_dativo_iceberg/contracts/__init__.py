"""Data contracts: ODCS documents, their compilation to Iceberg, and validation of records."""

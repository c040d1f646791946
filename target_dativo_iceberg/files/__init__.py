"""Parquet files without a catalog (`catalog_type: none`): Hive-style layout, run manifests."""

"""Singer tap that reads CSV files incrementally."""

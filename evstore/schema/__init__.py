"""Schema tooling: migrations through yoyo, catalog introspection, parity, drift, lint,
grants and sums."""

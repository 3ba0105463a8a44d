"""The workloads, one module per family."""

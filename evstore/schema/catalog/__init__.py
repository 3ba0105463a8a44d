"""Live-catalog introspection of both dialects into one model, and their comparison."""

from evstore.schema.catalog.diff import Difference, differences
from evstore.schema.catalog.model import (
    Check,
    Column,
    ForeignKey,
    Function,
    Index,
    PrimaryKey,
    Schema,
    Table,
    Trigger,
    Unique,
)

__all__ = [
    "Check",
    "Column",
    "Difference",
    "ForeignKey",
    "Function",
    "Index",
    "PrimaryKey",
    "Schema",
    "Table",
    "Trigger",
    "Unique",
    "differences",
]

"""Other libraries on top of evstore."""

"""What differs per database, behind the small interface of base.py: connection setup,
error translation and the tail's wake-up."""

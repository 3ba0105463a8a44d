"""Operations on a live store: verify, and what moves or publishes the log."""

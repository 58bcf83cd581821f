"""Block Kit views and messages, built from wording and plain data."""

"""Review storage (SQLite, edit history) and CSV export."""

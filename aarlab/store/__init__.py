"""aarlab.store."""

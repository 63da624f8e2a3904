"""aarlab.sandbox."""

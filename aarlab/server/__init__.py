"""aarlab.server."""

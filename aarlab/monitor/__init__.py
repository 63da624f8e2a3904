"""aarlab.monitor."""

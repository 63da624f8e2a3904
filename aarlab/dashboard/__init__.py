"""aarlab.dashboard."""

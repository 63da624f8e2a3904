"""aarlab.team."""

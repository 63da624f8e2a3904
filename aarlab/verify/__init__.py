"""aarlab.verify."""

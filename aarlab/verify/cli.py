"""`aarlab verify` and `aarlab generalize` (placeholder until aarlab.verify lands)."""
from aarlab.errors import UserError


def verify():
    """Verify claims by re-running them on held-out data."""
    raise UserError("aarlab verify is not built yet")


def generalize():
    """Run a method on other tasks."""
    raise UserError("aarlab generalize is not built yet")

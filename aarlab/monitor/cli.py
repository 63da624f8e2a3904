"""`aarlab flags` (placeholder until aarlab.monitor lands)."""
from aarlab.errors import UserError


def flags():
    """List and resolve monitor flags."""
    raise UserError("aarlab flags is not built yet")

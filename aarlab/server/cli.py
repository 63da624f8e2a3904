"""`aarlab serve` (placeholder until aarlab.server lands)."""
from aarlab.errors import UserError


def serve():
    """Serve the lab server."""
    raise UserError("aarlab serve is not built yet")

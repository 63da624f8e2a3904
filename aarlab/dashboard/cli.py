"""`aarlab report` and `aarlab export` (placeholder until aarlab.dashboard lands)."""
from aarlab.errors import UserError


def report():
    """Write a run report."""
    raise UserError("aarlab report is not built yet")


def export():
    """Export transcripts."""
    raise UserError("aarlab export is not built yet")

"""Commands for teams: run, resume, status (placeholder until aarlab.team lands)."""
from aarlab.errors import UserError


def run():
    """Run a team of researcher agents."""
    raise UserError("aarlab run is not built yet")


def resume():
    """Resume a stopped run."""
    raise UserError("aarlab resume is not built yet")


def status():
    """Show a run's status."""
    raise UserError("aarlab status is not built yet")

"""aarlab.agent."""

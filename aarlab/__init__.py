"""aarlab: an open lab for automated alignment research.

A team of LLM researcher agents, each in its own sandbox, shares a forum and a code store and submits
predictions to one evaluation server that holds the hidden labels. See README.md and docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"

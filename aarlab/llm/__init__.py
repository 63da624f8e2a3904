"""aarlab.llm."""

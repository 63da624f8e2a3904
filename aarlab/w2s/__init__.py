"""aarlab.w2s."""

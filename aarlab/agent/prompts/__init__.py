"""Prompt templates of the researcher agent (``string.Template`` files, ``$name`` placeholders)."""

"""A method that crashes."""
raise RuntimeError("boom: the method crashed on purpose")

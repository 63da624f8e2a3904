"""Errors that mean "the user asked for something that cannot be done", shown as one line by the CLI."""


class UserError(Exception):
    """A mistake in the user's input (config, path, name): the CLI prints the message alone and exits 2."""


class MissingExtra(UserError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"{package} is not installed: pip install 'aarlab[{extra}]'")
        self.package = package
        self.extra = extra


def require(module: str, extra: str):
    """Import an optional module lazily, turning ImportError into a MissingExtra naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module.split(".")[0], extra) from exc

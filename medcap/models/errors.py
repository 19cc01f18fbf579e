"""The one error type model loading raises, so callers show a message instead of a traceback."""


class ModelLoadError(RuntimeError):
    """A model could not be built or loaded; `str(exc)` is a complete, user-facing message."""

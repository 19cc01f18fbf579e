"""The one error type model loading raises, so callers show a message instead of a traceback."""


class ModelLoadError(RuntimeError):
    """A model could not be built or loaded; `str(exc)` is a complete, user-facing message."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (at most 300 characters), for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no detail)"

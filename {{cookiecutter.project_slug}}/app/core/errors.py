"""Errors shared across layers."""


class JobError(Exception):
    """An expected job failure (an upstream down, a bad reply).

    The scheduler logs it as one line with this message; any other exception is a bug and is
    logged with its traceback.
    """


def error_text(error: BaseException) -> str:
    """The error's message, or its type's name when the message is empty."""
    return str(error) or type(error).__name__

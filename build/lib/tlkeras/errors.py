"""Errors that reach the user as one line, defined free of TensorFlow so that callers can catch
them before (or without) importing it."""


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is one line naming the file."""

"""Errors that reach the user as one line, defined free of TensorFlow so that callers can catch
them before (or without) importing it."""


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is one line naming the file."""


class WorkerDied(RuntimeError):
    """A worker process ended abruptly (killed, out of memory); finished members are kept."""


class ConfigError(ValueError):
    """A protocol value out of range; the message is one line naming the value and the rule."""

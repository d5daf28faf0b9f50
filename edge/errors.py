"""Errors meant for the user: one line that names the file, key or value at fault."""


class EdgeError(Exception):
    """A problem the user can fix; the command-line tools print it as one line and exit non-zero."""


class ModelFileError(EdgeError):
    """A model file is missing, truncated, altered or unreadable."""


class NoInterpreterError(EdgeError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""

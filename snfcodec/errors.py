"""Exception types shared by every stage."""


class SnfError(Exception):
    """Base class of snfcodec's own errors."""


class SnfFormatError(SnfError, ValueError):
    """A ``.snf`` byte string is damaged, truncated, or not a file this version can read."""


class SnfInputError(SnfError, ValueError):
    """A user-supplied input (media file, option value) cannot be used; the message says which and why."""

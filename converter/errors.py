"""Errors the converter raises for problems with the user's model or options."""


class ConversionError(ValueError):
    """A model or option Ember cannot convert; the message says what and where (node, op,
    tensor, file), on one line."""

"""ember.interpreter: run .ember models through libember (ctypes binding)."""

from ._capi import EmberError
from .interpreter import Interpreter

__all__ = ["EmberError", "Interpreter"]

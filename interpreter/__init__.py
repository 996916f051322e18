"""ember.interpreter: run .ember models through libember (ctypes binding)."""

from ._capi import EmberError
from .interpreter import Interpreter, supported_ops

__all__ = ["EmberError", "Interpreter", "supported_ops"]

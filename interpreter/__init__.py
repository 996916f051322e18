"""ember.interpreter: run .ember models through libember (ctypes binding)."""

from ._capi import EmberError
from .interpreter import Delegate, Interpreter, load_delegate, supported_ops

__all__ = ["Delegate", "EmberError", "Interpreter", "load_delegate", "supported_ops"]

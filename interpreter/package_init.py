"""Ember: convert trained models to .ember files and run them fast on phones and ARM boards.

(Installed as ember/__init__.py; see CMakeLists.txt.)
"""

from ember.converter.convert import convert
from ember.converter.errors import ConversionError
from ember.interpreter import EmberError, Interpreter

__version__ = "0.1.0"
__all__ = ["Interpreter", "EmberError", "convert", "ConversionError", "__version__"]

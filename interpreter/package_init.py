"""Ember: convert trained models to .ember files and run them fast on phones and ARM boards.

(Installed as ember/__init__.py; see CMakeLists.txt.)
"""

from ember.converter.convert import convert
from ember.converter.errors import ConversionError
from ember.interpreter import Delegate, EmberError, Interpreter, load_delegate

__version__ = "0.1.0"
__all__ = ["Interpreter", "EmberError", "load_delegate", "Delegate", "convert", "ConversionError",
           "__version__"]

import os
import sys

# Test helpers (util.py) import as `from util import ...`.
sys.path.insert(0, os.path.dirname(__file__))

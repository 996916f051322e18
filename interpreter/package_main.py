"""`python -m ember` is the `ember` command. (Installed as ember/__main__.py.)"""

from ember.interpreter.cli import main

raise SystemExit(main())

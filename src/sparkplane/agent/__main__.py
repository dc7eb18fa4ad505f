"""`python -m sparkplane.agent`: the program inside a session's driver (see main.py)."""

import sys

from sparkplane.agent.main import main

sys.exit(main())

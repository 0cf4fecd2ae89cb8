"""`python -m l2agent.cli ...` (the lab starts speakers this way): the same as `l2agent ...`."""

import sys

from l2agent.cli import main

sys.exit(main())

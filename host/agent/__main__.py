"""``python3 -m host.agent``: run the host agent."""

from __future__ import annotations

import sys

from host.agent.main import main

sys.exit(main())

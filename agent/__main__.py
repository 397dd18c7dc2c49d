"""`python -m agent`: the `monitor-agent` command, run from a clone."""

from agent.cli import main

raise SystemExit(main())

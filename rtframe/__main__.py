"""`python -m rtframe ...`: the same as the `rtframe` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())

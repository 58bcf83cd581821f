"""`python -m bot` is the `b24mail` command."""

from bot.cli import main

raise SystemExit(main())

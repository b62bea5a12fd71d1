"""``python -m streamline_cli``."""

from streamline_cli.app import main

main()

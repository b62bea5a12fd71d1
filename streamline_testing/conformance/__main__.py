"""``python -m streamline_testing.conformance``: the same as ``streamline-conformance``."""

from streamline_testing.conformance.runner import main

if __name__ == "__main__":
    main()

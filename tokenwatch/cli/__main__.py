"""``python -m tokenwatch.cli``: the ``tokenwatch`` command (tests run it so)."""

from tokenwatch.cli import main

if __name__ == "__main__":
    main()

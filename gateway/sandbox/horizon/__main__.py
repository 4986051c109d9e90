"""``python -m gateway.sandbox.horizon``: run the fake Horizon as a server (see cli.main)."""

from gateway.sandbox.horizon.cli import main

if __name__ == "__main__":
    main()

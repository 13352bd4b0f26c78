"""The harnet command-line application (installed as the ``harnet_cli`` package)."""

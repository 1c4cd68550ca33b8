"""The ``offrl`` command line: one module per subcommand."""

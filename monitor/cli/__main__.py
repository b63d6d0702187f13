"""`python -m monitor.cli`: the same as the `monitor` command."""

from monitor.cli.main import main

main()

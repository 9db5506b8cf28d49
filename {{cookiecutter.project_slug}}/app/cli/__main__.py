"""`python -m app.cli` runs the same CLI as the console script."""

from app.cli.main import main

main()

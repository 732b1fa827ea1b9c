"""`python -m gridalarm` is the `gridalarm` command."""

from gridalarm.cli import main

main()

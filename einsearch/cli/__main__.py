from einsearch.cli import main

main()

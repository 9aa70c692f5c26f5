from kneeguard.cli import main

main()

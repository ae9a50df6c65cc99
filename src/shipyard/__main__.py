from shipyard.interfaces.cli.app import main

main()

from sparkplane.cli.main import main

main()

from dealflow.cli.main import main

main()

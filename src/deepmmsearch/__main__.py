from deepmmsearch.cli import main

main()

from grokking.report.cli import main

main()

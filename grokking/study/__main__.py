from grokking.study.cli import main

main()

from nhigw.cli import main

main()

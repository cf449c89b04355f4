"""`python -m gan_cli.report_main` = `gan-report`."""

from gan_cli.commands import report_main

if __name__ == "__main__":
    report_main()

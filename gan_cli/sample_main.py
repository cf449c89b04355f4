"""`python -m gan_cli.sample_main` = `gan-sample`."""

from gan_cli.commands import sample_main

if __name__ == "__main__":
    sample_main()

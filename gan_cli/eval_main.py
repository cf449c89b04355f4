"""`python -m gan_cli.eval_main` = `gan-eval`."""

from gan_cli.commands import eval_main

if __name__ == "__main__":
    eval_main()

"""`python -m gan_cli.train ...` runs the same entry point as `gan-train` (also under torchrun)."""

from gan_cli.cli import train_main

if __name__ == "__main__":
    train_main()

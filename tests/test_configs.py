"""Every shipped config option composes, passes the up-front checks, and builds its models."""

from pathlib import Path

import pytest

from gan_cli.models import build_models, build_translators
from gan_cli.schema import check_config
from tests.conftest import CONFIGS, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose_and_build(experiment):
    cfg = compose_config(f"experiment={experiment}", tiny=False)
    check_config(cfg)
    if cfg.model.name.value == "cyclegan":
        nets = build_translators(cfg.model, cfg.data, cfg.loss.name)
    else:
        nets = build_models(cfg.model, cfg.data, cfg.loss.name)
    assert all(sum(p.numel() for p in net.parameters()) > 0 for net in nets)


@pytest.mark.parametrize("group", ["data", "model", "loss", "optim", "trainer", "eval"])
def test_every_group_option_composes(group):
    for option in options(group):
        extra = ["data.root=/nowhere"] if (group, option) == ("data", "image_folder") else []
        if (group, option) in (("data", "digits2mnist"), ("data", "unpaired")):  # two domains: translation
            extra = ["model=cyclegan", "data.a.root=/nowhere", "data.b.root=/nowhere"]
        check_config(compose_config(f"{group}={option}", *extra, tiny=False))


def test_configs_folder_is_the_one_in_the_repo():
    assert (Path(CONFIGS) / "config.yaml").is_file()

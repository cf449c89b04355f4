"""--help texts: every key with its type, its default as typed on the command line and the comment
beside its declaration; no Python reprs."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum

import pytest

from gan_cli.commands import EvalCommand, SampleCommand
from gan_cli.helptext import cli_value, config_groups, field_comments, rows, train_help, type_text
from gan_cli.schema import GROUPS, EvalConfig, TrainerConfig
from tests.conftest import CONFIGS, run_cli

REPR = re.compile(r"<\w+\.\w+: |\w+(Config|Command)\(|\bNone\b|\bTrue\b|\bFalse\b")


class Colour(str, Enum):
    red = "red"
    blue = "blue"


@dataclass
class Knobs:
    plain: int = 3  # a trailing comment
    # a comment block above,
    # two lines long
    above: float = 0.5
    pragma: list[str] = field(default_factory=list)  # type: ignore[misc]  # after a pragma
    silent: bool = True
    colour: Colour = Colour.red  # noqa: E501
    maybe: str | None = None  # may be null


def line_of(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(key))


def test_comments_come_from_beside_or_above_the_field():
    assert field_comments(Knobs) == {
        "plain": "a trailing comment",
        "above": "a comment block above, two lines long",
        "pragma": "after a pragma",
        "maybe": "may be null",
    }


def test_values_and_types_as_a_user_types_and_reads_them():
    assert [cli_value(v) for v in (None, True, False, [0.5, 0.999], Colour.blue, "", "a b", 2e-4, "~/x")] == [
        "null",
        "true",
        "false",
        "[0.5,0.999]",
        "blue",
        "''",
        "'a b'",
        "0.0002",
        "~/x",
    ]
    hints = {f.name: f.type for f in dataclasses.fields(Knobs)}
    assert [type_text(eval(hints[k], globals())) for k in ("plain", "pragma", "colour", "maybe")] == [
        "int",
        "list of str",
        "red|blue",
        "str or null",
    ]
    assert [(r.key, r.default, r.type) for r in rows(Knobs, prefix="k.")][:3] == [
        ("k.plain", "3", "int"),
        ("k.above", "0.5", "float"),
        ("k.pragma", "[]", "list of str"),
    ]


# ---- gan-train --help ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def overview() -> str:
    return train_help(None)


def test_train_help_lists_groups_and_every_option_file(overview):
    groups = config_groups()
    for group in ("data", "model", "loss", "optim", "trainer", "eval", "experiment", "hydra/launcher"):
        assert group in groups
    for group in ("data", "model", "loss", "experiment"):
        options = sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))
        assert groups[group] == options
        for option in options:
            assert re.search(rf"\b{option}\b", overview), (group, option)
    assert re.search(r"^  loss +.*\bnonsaturating \(default\)", overview, re.M)
    assert re.search(r"^  data +.*\bmnist5k \(default\)", overview, re.M | re.S)


def test_train_help_common_keys_have_defaults_types_and_comments(overview):
    assert re.fullmatch(r"  trainer\.steps=16000 +int +G updates.*", line_of(overview, "trainer.steps="))
    assert re.fullmatch(
        r"  trainer\.device=auto +auto\|cpu\|cuda\|mps\b.*", line_of(overview, "trainer.device=")
    )
    assert "optim.betas=[0.5,0.999]" in overview and "list of float" in line_of(overview, "optim.betas=")
    assert "data.root=null" in overview and "str or null" in line_of(overview, "data.root=")
    assert "data.verify=true" in line_of(overview, "data.verify=") and "checksum" in overview
    for key in (
        "trainer.batch_size",
        "trainer.seed",
        "trainer.precision",
        "trainer.log_every",
        "data.image_size",
    ):
        assert f"{key}=" in overview
    assert "loss.n_critic=1" in overview and "D steps per G step" in line_of(overview, "loss.n_critic=")
    assert "resume=null" in overview and "a run directory or a checkpoint file" in overview
    assert "eval.every=0" in overview and "eval.metrics=[]" in overview
    assert "modes2d|fid|kid|is|pr|classifier" in overview


def test_train_help_points_further_and_shows_examples(overview):
    assert "gan-train --help trainer" in overview and "gan-train --cfg job" in overview
    assert (
        "gan-train model=mlp data=ring8" in overview and "gan-train -m loss=nonsaturating,hinge" in overview
    )
    assert not REPR.search(overview), REPR.search(overview)


def test_train_help_of_one_group_lists_every_key_with_its_comment():
    text = train_help("trainer")
    comments = field_comments(TrainerConfig)
    for f in dataclasses.fields(TrainerConfig):
        if f.name == "health":
            continue
        line = line_of(text, f"trainer.{f.name}=")
        assert comments.get(f.name, "-").split()[0] in line or comments.get(f.name, "")[:20] in text
    assert "trainer.steps=16000" in line_of(text, "trainer.steps=") and "G updates" in line_of(
        text, "trainer.steps="
    )
    assert "trainer.keep_ckpts=3" in text and "newest step checkpoints kept" in text
    assert "trainer.health.warmup=200" in text and "trainer.on_nonfinite=stop" in text
    assert not REPR.search(text)


def test_train_help_of_every_group_parses_its_options():
    for group in config_groups():
        text = train_help(group)
        assert text.startswith(f"gan-train --help {group}\n")
        if group in GROUPS:
            assert f"{group}." in text and not REPR.search(text)
    loss = train_help("loss")
    assert re.search(r"^  wgan_gp +WGAN with gradient penalty", loss, re.M)
    wgan = re.search(r" wgan (Wasserstein .*?) wgan_gp WGAN", " ".join(loss.split()))
    assert wgan and "Sets " in wgan[1] and "loss.n_critic=5" in wgan[1]  # what differs from the defaults
    assert "loss.clip" not in wgan[1]  # 0.01, as the schema's default
    data = train_help("data")
    assert "data.root=~/datasets" in data and "data.num_classes=10" in data
    assert "data.name" not in data  # the option names it
    assert re.search(r"keys \(key=default with data=mnist5k", data)


def test_unknown_topic_names_the_groups(capsys):
    text = train_help("trainerz")
    assert "no config group 'trainerz'" in text
    assert "Groups: data, eval, experiment" in text and "trainer" in text
    assert capsys.readouterr() == ("", "")  # pure: nothing printed


# ---- gan-sample / gan-eval --help ----------------------------------------------------------------
def test_sample_help_shows_each_key_its_type_default_and_comment():
    result = run_cli("--help", cwd=CONFIGS.parent, module="gan_cli.sample_main")
    assert result.returncode == 0
    text = result.stdout
    assert not REPR.search(text) and "SampleFormat" not in text
    assert re.fullmatch(r"  n=64 +int +samples to draw.*", line_of(text, "n="))
    assert re.fullmatch(r"  run +str, required +a run directory.*", line_of(text, "run "))
    assert re.fullmatch(r"  format=null +png\|npy or null +what a folder holds.*", line_of(text, "format="))
    assert "labels=null" in text and "list of int or null" in text
    for f in dataclasses.fields(SampleCommand):
        assert re.search(rf"^  {f.name}\b", text, re.M), f.name
        assert field_comments(SampleCommand).get(f.name), f"no comment for {f.name}"
    assert "out=grid.png" in text and "out=samples.npz" in text and "out=samples/" in text


def test_eval_help_lists_nested_keys():
    result = run_cli("-h", cwd=CONFIGS.parent, module="gan_cli.eval_main")
    assert result.returncode == 0
    text = result.stdout
    assert not REPR.search(text) and "EvalConfig(" not in text
    assert "evaluate during training every N steps" in line_of(text, "eval.every=0")
    for f in dataclasses.fields(EvalConfig):
        assert re.search(rf"^  eval\.{f.name}=", text, re.M), f.name
    assert "eval.cache_dir=~/.cache/gan-cli" in text and "eval.best_mode=min" in text
    for f in dataclasses.fields(EvalCommand):
        if f.name != "eval":
            assert field_comments(EvalCommand).get(f.name), f"no comment for {f.name}"
    assert "metrics=[classifier]" in text

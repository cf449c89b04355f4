"""What the resolved config and the checkpoint say is what the run does: every group option
reaches the config and the built objects, and every override accepted on resume takes effect."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli.losses import LOSSES
from gan_cli.models import CGANGenerator, DCGANGenerator, MLPGenerator
from gan_cli.resume import ResumeError
from gan_cli.trainer import Trainer
from tests.conftest import CONFIGS, TINY, compose_config, run_cli
from tests.test_training import fit

GROUPS = ("data", "model", "loss", "optim", "trainer", "eval", "experiment", "tuned")


def _options(group: str) -> list[str]:
    root = CONFIGS / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _values(group: str, option: str) -> tuple[dict, bool]:
    """An option file's own values (its `defaults` entries of the same group expanded), and
    whether it is written into the global package."""
    path = CONFIGS / group / f"{option}.yaml"
    text = path.read_text()
    node = OmegaConf.to_container(OmegaConf.load(path))
    merged: dict = {}
    for entry in node.pop("defaults", []) or []:
        if isinstance(entry, str) and entry.startswith(f"/{group}/") and entry.endswith("@_here_"):
            merged.update(_values(group, entry[len(group) + 2 : -len("@_here_")])[0])
    merged.update(node)
    return merged, "@package _global_" in text


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _as_plain(value):
    return value.value if hasattr(value, "value") else value


PAIRS = [(g, o) for g in GROUPS for o in _options(g)]


@pytest.mark.parametrize("group,option", PAIRS, ids=[f"{g}={o}" for g, o in PAIRS])
def test_every_group_option_is_in_force(group, option):
    """`group=option` puts every value of the option's file into the resolved config (a loss no
    longer overwrites the optimizer group, an experiment's values win over its groups')."""
    extra = ["data.root=/somewhere"] if option in ("image_folder",) else []
    if group != "tuned":  # a combination's tuning overrides its groups' files on purpose (below)
        extra.append("~tuned")
    cfg = OmegaConf.structured(compose_config(f"{group}={option}", *extra, tiny=False))
    values, global_package = _values(group, option)
    expected = _flatten(values if global_package else {group: values})
    for key, value in expected.items():
        if key.startswith("hydra.") or value == "???" or (isinstance(value, str) and "${" in value):
            continue  # an interpolation is checked where its target is
        got = OmegaConf.select(cfg, key)
        got = [_as_plain(v) for v in got] if isinstance(got, list) else _as_plain(got)
        assert got == value, f"{group}={option}: {key} is {got!r}, the option says {value!r}"


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("optim", [None, "adam", "rmsprop"])
def test_loss_and_optimizer_choices_reach_the_built_objects(loss, optim, tmp_path):
    over = [f"loss={loss}"] + ([f"optim={optim}"] if optim else [])
    cfg = compose_config(*over)
    trainer = Trainer(cfg, tmp_path)
    usual = {"wgan": "rmsprop"}.get(loss, "adam")
    name = optim or usual
    assert cfg.optim.name.value == name
    assert (
        type(trainer.game.opt_g).__name__.lower() == name
        and type(trainer.game.opt_d).__name__.lower() == name
    )
    usual_adam = {"wgan_gp": 1e-4, "nonsaturating": 6e-4}.get(loss, 2e-4) if optim is None else 2e-4
    lr = {"rmsprop": 5e-5, "adam": usual_adam}[name]
    assert trainer.game.opt_g.param_groups[0]["lr"] == lr == cfg.optim.lr_g
    if name == "adam":
        betas = (0.0, 0.9) if loss == "wgan_gp" and optim is None else (0.5, 0.999)
        assert trainer.game.opt_d.param_groups[0]["betas"] == betas
    assert trainer.game.loss is LOSSES[loss]
    assert trainer.cfg.loss.n_critic == (5 if loss.startswith("wgan") else 1)


def test_explicit_optimizer_values_win_over_the_loss_defaults(tmp_path):
    cfg = compose_config("loss=wgan", "optim.lr_g=3e-4", "optim.name=adam", "optim.betas=[0.1,0.2]")
    trainer = Trainer(cfg, tmp_path)
    assert isinstance(trainer.game.opt_g, torch.optim.Adam)
    assert trainer.game.opt_g.param_groups[0]["lr"] == 3e-4 and trainer.game.opt_g.param_groups[0][
        "betas"
    ] == (0.1, 0.2)
    assert trainer.game.opt_d.param_groups[0]["lr"] == 5e-5  # the loss's usual value where not overridden


@pytest.mark.parametrize(
    "model,cls", [("dcgan", DCGANGenerator), ("cgan", CGANGenerator), ("mlp", MLPGenerator)]
)
def test_model_choice_reaches_the_built_objects(model, cls, tmp_path):
    trainer = Trainer(compose_config(f"model={model}"), tmp_path)
    assert isinstance(trainer.game.G, cls)


def test_cfg_job_shows_the_chosen_optimizer(tmp_path):
    """The reported input: `gan-train --cfg job optim=rmsprop` printed `optim.name: adam`."""
    out = run_cli("--cfg", "job", "optim=rmsprop", cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    optim = out.stdout.split("\noptim:\n")[1].split("\n")[0]
    assert optim.strip() == "name: rmsprop"


# ---- resume: every accepted override takes effect -------------------------------------------------
def _tiny_run(tmp_path: Path, *over: str) -> Path:
    run = tmp_path / "run"
    out = run_cli(
        *TINY, "trainer.steps=4", "trainer.ckpt_every=2", f"hydra.run.dir={run}", *over, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return run


def test_resume_with_new_learning_rates_takes_effect(tmp_path):
    """The reported input: resume with optim.lr_g / lr_d = 1e-5 kept training at 2e-4."""
    run = _tiny_run(tmp_path)
    out = run_cli(
        f"resume={run}",
        "trainer.steps=8",
        "optim.lr_g=1e-5",
        "optim.lr_d=1e-5",
        "optim.betas=[0.3,0.9]",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr/g"] for r in records if r["step"] > 4] == [1e-5] * 4
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["config"]["optim"]["lr_g"] == 1e-5
    for opt in ("g", "d"):
        group = state["optim"][opt]["param_groups"][0]
        assert group["lr"] == 1e-5 and group["initial_lr"] == 1e-5 and tuple(group["betas"]) == (0.3, 0.9)
    assert [s["base_lrs"] for s in state["schedulers"]] == [[1e-5], [1e-5]]


def test_resume_applies_a_new_schedule_to_the_new_rates(tmp_path):
    cfg = compose_config("trainer.steps=4")
    first = Trainer(cfg, tmp_path)
    fit(first, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    again = Trainer(
        compose_config(
            "trainer.steps=8", "optim.lr_g=1e-3", "optim.schedule=linear", "optim.schedule_steps=8"
        ),
        tmp_path,
    )
    again.load_state_dict(state, tmp_path)
    assert again.game.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 4 / 8))
    assert again.game.schedulers[0].base_lrs == [1e-3]


def test_unchanged_resume_keeps_every_optimizer_value_bit_for_bit(tmp_path):
    cfg = compose_config("trainer.steps=4", "optim.schedule=cosine")
    first = Trainer(cfg, tmp_path)
    fit(first, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    again = Trainer(cfg, tmp_path)
    again.load_state_dict(state, tmp_path)
    for a, b in zip((first.game.opt_g, first.game.opt_d), (again.game.opt_g, again.game.opt_d), strict=True):
        assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"]
        assert a.param_groups[0]["betas"] == b.param_groups[0]["betas"]


@pytest.mark.parametrize(
    "override,key",
    [
        ("optim=rmsprop", "optim.name"),
        pytest.param("optim.name=rmsprop", "optim.name", marks=pytest.mark.slow),
        pytest.param("trainer.seed=5", "trainer.seed", marks=pytest.mark.slow),
    ],
)
def test_resume_refuses_what_a_checkpoint_cannot_carry_over(override, key, tmp_path):
    run = _tiny_run(tmp_path)
    out = run_cli(f"resume={run}", "trainer.steps=8", override, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert key in out.stderr and "refusing" in out.stderr


def test_resume_under_another_precision_and_grid_size(tmp_path):
    cfg = compose_config("trainer.steps=3")
    fit(Trainer(cfg, tmp_path), tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    again = Trainer(
        compose_config("trainer.steps=5", "trainer.precision=fp16", "trainer.n_samples=4"), tmp_path
    )
    again.load_state_dict(state, tmp_path)
    assert again.game.scaler_g.is_enabled() and again.game.fixed_z.shape[0] == 4
    fit(again, tmp_path)
    assert again.step == 5


def test_resume_with_another_eval_best_forgets_the_old_best(tmp_path):
    trainer = Trainer(compose_config("trainer.steps=2"), tmp_path)
    fit(trainer, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    state["best"], state["best_key"] = 0.5, "fid"
    same = Trainer(compose_config("trainer.steps=4", "eval.best=fid"), tmp_path)
    same.load_state_dict(state, tmp_path)
    other = Trainer(compose_config("trainer.steps=4", "eval.best=classifier/fd"), tmp_path)
    other.load_state_dict(state, tmp_path)
    assert same.best == 0.5 and other.best is None


def test_resume_error_type_is_a_user_error():
    from gan_cli.errors import UserError

    assert issubclass(ResumeError, UserError)


@pytest.mark.parametrize(
    "overrides, width, lr, steps",
    [
        ((), (48, 24), 1.5e-3, 16000),  # `gan-train`: the quick start's tuning (configs/tuned/)
        (("data=mnist5k", "model=dcgan", "loss=nonsaturating"), (48, 24), 1.5e-3, 16000),
        (("~tuned",), (64, 64), 6e-4, 2300),  # dropped: Radford's widths, the loss's usual rate
        (("data=cifar10",), (64, 64), 6e-4, 2300),  # another data set: not tuned
        (("loss=hinge",), (64, 64), 2e-4, 2300),  # another loss: its own usual optimizer
        (("loss=wgan_gp",), (64, 64), 1e-4, 2300),
        (("model.g_channels=64", "optim.lr_g=2e-4"), (64, 24), 2e-4, 16000),  # explicit keys win
    ],
)
def test_tuned_settings_apply_to_their_combination_only(overrides, width, lr, steps):
    cfg = compose_config(*overrides, tiny=False)
    assert (cfg.model.g_channels, cfg.model.d_channels) == width
    assert cfg.optim.lr_g == lr and cfg.trainer.steps == steps

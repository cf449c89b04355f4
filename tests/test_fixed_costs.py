"""What keeps a short job's fixed costs down must not change a number: grids and PNGs tiled and
written as torchvision would, optimizers that skip torch._dynamo yet step and save exactly as
torch.optim's, and the fast exit that still runs every atexit handler and joins every thread."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchvision.utils import make_grid, save_image

from gan_cli.finish import finish, is_gan_cli_process
from gan_cli.logs import image_grid, save_png
from gan_cli.optim import Adam, RMSprop

from .conftest import run_cli

TINY_ARGS = [
    "data=fake", "data.image_size=16", "data.channels=1", "data.size=32", "model.g_channels=4",
    "model.d_channels=4", "model.z_dim=8", "trainer.batch_size=8", "trainer.steps=1", "trainer.n_samples=8",
    "trainer.progress=false", "trainer.tensorboard=false", "trainer.health.diversity_samples=8",
]  # fmt: skip


@pytest.mark.parametrize("n, nrow, channels", [(1, 8, 1), (5, 2, 1), (6, 3, 3), (64, 8, 3), (7, 10, 3)])
def test_image_grid_equals_torchvision_make_grid(n, nrow, channels):
    x = 1.5 * torch.randn(n, channels, 9, 7, generator=torch.Generator().manual_seed(n))  # some beyond 1
    want = make_grid(x, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)
    got = image_grid(x, nrow)
    assert got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("channels", [1, 3])
def test_save_png_writes_torchvision_save_image_bytes(tmp_path, channels):
    image = torch.rand(channels, 20, 30, generator=torch.Generator().manual_seed(channels))
    image[0, 0, :3] = torch.tensor([-0.2, 1.3, 0.5 / 255])  # clipped low, clipped high, rounding
    save_image(image, tmp_path / "want.png")
    save_png(image, tmp_path / "got.png")
    assert (tmp_path / "got.png").read_bytes() == (tmp_path / "want.png").read_bytes()


def _train(opt_cls: type, steps: int = 5, **kwargs) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    opt = opt_cls(net.parameters(), **kwargs)
    data = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        net(data).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()], opt


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (Adam, torch.optim.Adam, {"lr": 1e-2, "betas": (0.5, 0.99), "fused": True}),
        (Adam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1}),
        (RMSprop, torch.optim.RMSprop, {"lr": 1e-2}),
    ],
)
def test_eager_optimizers_step_and_save_exactly_as_torch_optim(ours, theirs, kwargs):
    assert ours is not theirs and issubclass(ours, theirs) and ours.__name__ == theirs.__name__
    mine, opt_mine = _train(ours, **kwargs)
    ref, opt_ref = _train(theirs, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(mine, ref, strict=True))
    a, b = opt_mine.state_dict(), opt_ref.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for k in b["state"][i])
    opt_ref.load_state_dict(a)  # each loads the other's checkpoint
    opt_mine.load_state_dict(b)


def test_a_training_run_never_imports_torch_dynamo(tmp_path):
    """torch._dynamo costs 1.5 s of start-up on a 2-core CPU; a plain (uncompiled) run with grids,
    checkpoints and the exported generator needs none of it."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('dynamo imported:', 'torch._dynamo' in sys.modules))\n"
        "from gan_cli.cli import train_main\n"
        f"sys.argv = ['gan-train', 'hydra.run.dir={tmp_path / 'run'}', 'data=fake', 'data.image_size=16',\n"
        "  'data.channels=3', 'data.size=64', 'model.g_channels=4', 'model.d_channels=4', 'model.z_dim=8',\n"
        "  'trainer.batch_size=8', 'trainer.steps=2', 'trainer.log_every=1', 'trainer.n_samples=8',\n"
        "  'trainer.progress=false', 'trainer.health.diversity_samples=8']\n"
        "train_main()\n"
    )
    cmd = [sys.executable, "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "dynamo imported: False" in out.stdout
    assert (tmp_path / "run" / "checkpoints" / "generator.pt").is_file()
    assert (tmp_path / "run" / "samples" / "step_000002.png").is_file()


@pytest.mark.parametrize(
    "main,args,message",
    [
        ("cli.train_main", ["loss.g_steps=0"], "loss.g_steps must be >= 1, got 0"),  # check_config
        ("cli.train_main", ["trainer.stepz=10"], "Unknown config key 'trainer.stepz'"),  # override check
        ("cli.train_main", ["trainer.steps=${nope}"], "Interpolation key 'nope' not found"),  # resolving
        ("commands.sample_main", ["run=x", "n=-3"], "n must be >= 1, got -3."),
        ("commands.eval_main", ["run=x", "metrics=[fid]", "eval.n_samples=0"], "eval.n_samples must be >= 2"),
        ("commands.eval_main", ["run=x"], "name the metrics"),
    ],
)
def test_a_mistake_in_the_arguments_is_reported_before_torch_is_imported(main, args, message, tmp_path):
    """Importing torch costs 2-3 s of a 2-core CPU; gan-train, gan-sample and gan-eval find a
    mistake in their arguments without it."""
    module, function = main.split(".")
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
        f"from gan_cli.{module} import {function}\n"
        f"sys.argv = ['gan-cli', *{args!r}]\n"
        f"{function}()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert "torch imported: False" in out.stdout


def test_finish_inside_another_program_is_sys_exit():
    assert not is_gan_cli_process()  # pytest's __main__
    with pytest.raises(SystemExit) as exit_:
        finish(3)
    assert exit_.value.code == 3


def _probe_script(tmp_path, body: str) -> list[str]:
    script = tmp_path / "gan-probe"  # a console script's name: the fast exit applies
    repo = str(__import__("pathlib").Path(__file__).parents[1])
    script.write_text(
        "import atexit, sys, threading, time\n"
        f"sys.path.insert(0, {repo!r})\n"
        "from gan_cli.finish import finish, is_gan_cli_process\n"
        f"out = {str(tmp_path)!r}\n"
        "atexit.register(lambda: open(out + '/atexit', 'w').write('ran'))\n" + body
    )
    return [sys.executable, str(script)]


def test_finish_runs_atexit_handlers_flushes_and_keeps_the_exit_status(tmp_path):
    # no newline at the end: finish must flush it
    body = "print('gan-cli process:', is_gan_cli_process(), end='')\nfinish(5)\n"
    out = subprocess.run(_probe_script(tmp_path, body), capture_output=True, text=True, timeout=60)
    assert out.returncode == 5
    assert out.stdout == "gan-cli process: True"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_finish_with_threads_still_running_exits_normally(tmp_path):
    """A launcher's executor thread (joblib's loky) is stopped by the interpreter's own exit: the
    fast exit must not wait for it, nor kill it."""
    body = (
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    open(out + '/thread', 'w').write('joined')\n"
        "threading.Thread(target=late).start()\n"
        "finish(4)\n"
    )
    out = subprocess.run(_probe_script(tmp_path, body), capture_output=True, text=True, timeout=60)
    assert out.returncode == 4
    assert (tmp_path / "thread").read_text() == "joined"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_gan_train_still_exits_0_and_reports(tmp_path):
    out = run_cli(*TINY_ARGS, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Done: 1 steps" in out.stdout


def test_a_run_composes_its_config_once(tmp_path):
    """Hydra's probe for hydra.mode (a second composition, 0.5 s) is skipped."""
    probe = (
        "import atexit, sys\n"
        "from hydra._internal.hydra import Hydra\n"
        "calls = []\n"
        "compose = Hydra.compose_config\n"
        "Hydra.compose_config = lambda self, *a, **k: calls.append(1) or compose(self, *a, **k)\n"
        "atexit.register(lambda: print('compositions:', len(calls)))\n"
        "from gan_cli.cli import train_main\n"
        f"sys.argv = ['gan-train', 'hydra.run.dir={tmp_path / 'run'}', *{TINY_ARGS!r}]\n"
        "train_main()\n"
    )
    cmd = [sys.executable, "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "compositions: 1" in out.stdout


def test_hydra_mode_on_the_command_line_still_chooses_multirun(tmp_path):
    out = run_cli("hydra.mode=MULTIRUN", "loss=hinge,lsgan", *TINY_ARGS, "hydra.sweep.dir=s", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "s" / "0" / "metrics.jsonl").is_file()
    assert (tmp_path / "s" / "1" / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("model=cgan", "optim.schedule=linear", "trainer.diffaugment=[color,cutout]"),
        ("model=cyclegan",),
        ("model=stylegan2", "trainer.ada=true"),
        ("data=ring8", "model=mlp", "model.z_prior=truncated", "model.z_components=4"),
        ("experiment=stacked_mnist_small_d",),
    ],
)
def test_config_dict_equals_omegaconfs_container(overrides):
    """The checkpoint's config, read straight off the dataclasses, is OmegaConf's plain container
    of the same config, value for value and type for type (enums by name, tuples as lists)."""
    from omegaconf import OmegaConf

    from gan_cli.games.gan import config_dict

    from .conftest import compose_config

    cfg = compose_config(*overrides)
    want = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    got = config_dict(cfg)
    assert got == want
    assert repr(got) == repr(want)  # the same types too (1 == 1.0 == True would pass ==)

"""gan-sample writes what out= names: its extension decides the format (a grid image, .npy, .npz,
else a folder), and format= only says what a folder holds. Also gan-eval's and gan-report's out=."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gan_cli.commands import (
    CommandError,
    SampleCommand,
    SampleFormat,
    eval_out,
    report_main,
    sample,
    sample_target,
)
from gan_cli.data import mixture_modes
from gan_cli.logs import scatter_image
from tests.conftest import run_cli
from tests.test_eval import TINY_RING, cgan_run  # noqa: F401 - cgan_run is a fixture (a tiny trained cGAN)

N, SIZE = 20, 16  # cgan_run: 16 px greyscale, 10 classes; a grid has one row of 10 per class


def draw(run, out, **kw) -> None:
    sample(SampleCommand(run=str(run), n=N, out=str(out), **kw))


def tiles(grid: np.ndarray, nrow: int, count: int) -> np.ndarray:
    """The (count, SIZE, SIZE, C) images of a make_grid image with padding 2."""
    step = SIZE + 2
    return np.stack(
        [grid[2 + (i // nrow) * step :][:SIZE, 2 + (i % nrow) * step :][:, :SIZE] for i in range(count)]
    )


def read(path) -> tuple[str, np.ndarray]:
    with Image.open(path) as img:
        return img.format, np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def arrays(cgan_run, tmp_path_factory):  # noqa: F811
    """The reference: the samples as .npy (uint8 (N, H, W, C)) and their labels."""
    out = tmp_path_factory.mktemp("ref") / "s.npy"
    draw(cgan_run, out)
    return np.load(out), np.load(out.with_name("s_labels.npy"))


def test_npy_and_npz_hold_the_same_samples_and_labels(cgan_run, arrays, tmp_path):  # noqa: F811
    x, y = arrays
    assert x.shape == (N, SIZE, SIZE, 1) and x.dtype == np.uint8
    assert y.tolist() == [i % 10 for i in range(N)]
    draw(cgan_run, tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as f:
        assert sorted(f.files) == ["labels", "samples"]
        np.testing.assert_array_equal(f["samples"], x)
        np.testing.assert_array_equal(f["labels"], y)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # one file, no separate labels


@pytest.mark.parametrize(
    "suffix,pil", [(".png", "PNG"), (".bmp", "BMP"), (".tif", "TIFF"), (".webp", "WEBP")]
)
def test_lossless_grid_images_hold_the_npy_pixels(cgan_run, arrays, tmp_path, suffix, pil):  # noqa: F811
    x, _ = arrays
    draw(cgan_run, tmp_path / f"grid{suffix}")
    fmt, grid = read(tmp_path / f"grid{suffix}")
    assert (tmp_path / f"grid{suffix}").is_file() and fmt == pil
    assert grid.shape == (2 * SIZE + 3 * 2, 10 * SIZE + 11 * 2, 3)  # 20 samples, one row of 10 per class
    np.testing.assert_array_equal(tiles(grid, 10, N), np.repeat(x, 3, axis=-1))


@pytest.mark.parametrize("name", ["grid.jpg", "grid.JPEG"])
def test_jpeg_grid_is_one_jpeg_file(cgan_run, arrays, tmp_path, name):  # noqa: F811
    x, _ = arrays
    draw(cgan_run, tmp_path / name)
    fmt, grid = read(tmp_path / name)
    assert (tmp_path / name).is_file() and fmt == "JPEG"
    error = np.abs(tiles(grid, 10, N).astype(int) - np.repeat(x, 3, axis=-1).astype(int))
    assert error.mean() < 3  # quality 95


def test_folders_of_pngs_and_of_one_npy(cgan_run, arrays, tmp_path):  # noqa: F811
    x, y = arrays
    for out in ("pngs", "dots.v2", "trailing.png/"):  # no image or array extension, or a trailing /
        sample(SampleCommand(run=str(cgan_run), n=N, out=f"{tmp_path}/{out}"))
        folder = tmp_path / out.rstrip("/")
        assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == [
            f"{i:06d}.png" for i in range(N)
        ]
        for i in (0, 7, N - 1):
            np.testing.assert_array_equal(read(folder / f"{i:06d}.png")[1], np.repeat(x[i], 3, axis=-1))
    draw(cgan_run, tmp_path / "arrays", format=SampleFormat.npy)
    np.testing.assert_array_equal(np.load(tmp_path / "arrays" / "samples.npy"), x)
    np.testing.assert_array_equal(np.load(tmp_path / "arrays" / "samples_labels.npy"), y)


def test_upper_case_array_names_are_kept(cgan_run, arrays, tmp_path):  # noqa: F811
    draw(cgan_run, tmp_path / "S.NPY")
    draw(cgan_run, tmp_path / "S.NPZ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.NPY", "S.NPZ", "S_labels.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "S.NPY"), arrays[0])


def test_format_that_contradicts_the_extension_is_refused(tmp_path):
    for fmt, out in (
        (SampleFormat.npy, "grid.png"),
        (SampleFormat.png, "s.npy"),
        (SampleFormat.npy, "s.npz"),
    ):
        with pytest.raises(CommandError) as err:
            sample_target(str(tmp_path / out), fmt)
        assert f"format={fmt.value} contradicts out={tmp_path / out}" in str(err.value)
    assert sample_target("g.png", SampleFormat.png).kind == "image"
    assert sample_target("s.npy", SampleFormat.npy).kind == "npy"
    target = sample_target("grid.png/", SampleFormat.npy)
    assert (target.kind, target.folder_format) == ("folder", SampleFormat.npy)
    assert sample_target("grid.tiff", None).pil_format == "TIFF"
    assert sample_target("samples", None).folder_format == SampleFormat.png


def test_names_that_would_clash_with_what_is_there(cgan_run, tmp_path):  # noqa: F811
    (tmp_path / "grid.png").mkdir()  # what an older gan-sample made of out=grid.png
    with pytest.raises(CommandError, match="is an existing folder"):
        sample_target(str(tmp_path / "grid.png"), None)
    (tmp_path / "notes").write_text("x")
    with pytest.raises(CommandError, match="is an existing file"):
        sample_target(str(tmp_path / "notes"), None)
    sample(SampleCommand(run=str(cgan_run), n=6, out=str(tmp_path / "many")))
    with pytest.raises(CommandError, match="already holds 2 sample PNGs numbered from 4 on"):
        sample(SampleCommand(run=str(cgan_run), n=4, out=str(tmp_path / "many")))
    sample(SampleCommand(run=str(cgan_run), n=6, out=str(tmp_path / "many")))  # the same command again
    for key, value in (("n", 0), ("batch_size", 0), ("interpolate", -1), ("truncation", -0.5)):
        with pytest.raises(CommandError, match=f"{key} must be >= "):
            sample(SampleCommand(run=str(cgan_run), out=str(tmp_path / "x.png"), **{key: value}))


def test_points_go_to_scatter_images_and_arrays(tmp_path):
    result = run_cli(*TINY_RING, "trainer.steps=2", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    for out in ("p.npy", "p.npz", "p.jpg", "p.png"):
        sample(SampleCommand(run=str(run), n=12, seed=5, out=str(tmp_path / out)))
    points = np.load(tmp_path / "p.npy")
    assert points.shape == (12, 2) and points.dtype == np.float32
    with np.load(tmp_path / "p.npz") as f:
        assert f.files == ["samples"]  # unconditional: no labels
        np.testing.assert_array_equal(f["samples"], points)
    scatter = scatter_image(torch.from_numpy(points), mixture_modes("ring8"))  # dots over red crosses
    expected = scatter.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert ((expected[..., 0] == 255) & (expected[..., 1] == 0)).sum() > 8 * 10  # the modes are drawn
    found, pixels = read(tmp_path / "p.png")
    assert found == "PNG"
    np.testing.assert_array_equal(pixels, expected)
    found, pixels = read(tmp_path / "p.jpg")
    assert found == "JPEG" and pixels.shape == (256, 256, 3)
    assert np.abs(pixels.astype(int) - expected.astype(int)).mean() < 3
    with pytest.raises(CommandError, match="not a folder"):
        sample(SampleCommand(run=str(run), n=12, out=str(tmp_path / "folder")))


def test_gan_sample_cli_writes_a_jpeg_file_and_says_so(cgan_run, tmp_path):  # noqa: F811
    result = run_cli(f"run={cgan_run}", "n=20", "out=grid.jpg", cwd=tmp_path, module="gan_cli.sample_main")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "grid.jpg").is_file() and read(tmp_path / "grid.jpg")[0] == "JPEG"
    assert "-> grid.jpg (JPEG, a grid of 10 a row)" in result.stdout
    bad = run_cli(f"run={cgan_run}", "out=g.png", "format=npy", cwd=tmp_path, module="gan_cli.sample_main")
    assert bad.returncode == 2 and "format=npy contradicts out=g.png" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "g.png").exists()


# ---- gan-eval's and gan-report's out= -----------------------------------------------------------
def test_gan_eval_out_is_a_json_file_or_a_folder(tmp_path):
    assert eval_out(str(tmp_path / "e.json")) == tmp_path / "e.json"
    assert eval_out(str(tmp_path)) == tmp_path / "eval.json"
    assert eval_out(f"{tmp_path}/new/") == tmp_path / "new" / "eval.json"
    with pytest.raises(CommandError, match="gan-eval writes JSON"):
        eval_out(str(tmp_path / "results.csv"))


def test_gan_report_out_is_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gan-report", str(tmp_path), "out=summary.md"])
    with pytest.raises(SystemExit) as exit_:
        report_main()
    assert exit_.value.code == 2
    assert "out=summary.md: out= is the folder that gets report.md" in capsys.readouterr().err
    assert not (tmp_path / "summary.md").exists()


def test_translation_settings_on_a_noise_generator_are_refused(cgan_run, tmp_path):  # noqa: F811
    out = run_cli(
        f"run={cgan_run}",
        "direction=b2a",
        f"out={tmp_path / 'g.png'}",
        cwd=tmp_path,
        module="gan_cli.sample_main",
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "direction= is for translation runs (model=cyclegan); this run samples from noise." in out.stderr
    assert not (tmp_path / "g.png").exists()

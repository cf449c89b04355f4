"""`gan-sample`, `gan-eval` and `gan-report`: key=value commands on finished (or running) runs.

They take the same `key=value` syntax as `gan-train`, checked against a dataclass schema, but
create no run directory of their own.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gan_cli.errors import CommandError, UserError
from gan_cli.finish import finish
from gan_cli.schema import EvalConfig, MetricName


class Translation(str, Enum):
    a2b = "a2b"  # domain A -> B (G_AB)
    b2a = "b2a"  # domain B -> A (G_BA)


class SampleFormat(str, Enum):
    png = "png"  # one PNG file per sample
    npy = "npy"  # one samples.npy array (+ samples_labels.npy for conditional models)


@dataclass
class SampleCommand:
    run: str = "???"  # a run directory, or a checkpoint / generator.pt file
    n: int = 64  # samples to draw (interpolate > 0: rounded down to whole rows)
    # its extension decides what is written: .png .jpg .webp .bmp .tif ... one grid image (2-D points:
    # a scatter); .npy one array (images: uint8 (N, H, W, C)); .npz one file of samples (+ labels);
    # anything else (or a trailing /) a folder
    out: str = "samples.png"
    format: SampleFormat | None = None  # what a folder holds: png (default) or npy
    seed: int = 0  # seed of the latent codes: the same seed gives the same samples
    labels: list[int] | None = None  # conditional models: the classes to draw (cycled to n)
    # redraw latent components beyond this |value|; 0 = off (uniform prior: t < 1 draws U[-t, t];
    # truncated prior: t below model.z_truncation; a t that changes nothing is refused)
    truncation: float = 0.0
    # > 0: rows of this many steps along walks between random codes (slerp; straight lines for a
    # uniform prior or a mixture)
    interpolate: int = 0
    # stylegan2 (walks run in w there): truncation in w space, w_avg + psi (w - w_avg); 1 = off, 0.7 is usual
    psi: float = 1.0
    # stylegan2: K > 0 draws the style-mixing grid of K row codes x K column codes instead of samples
    style_mix: int = 0
    # style_mix: the first layer whose style comes from the column's code (before it: the row's); 0 = half
    mix_cutoff: int = 0
    nrow: int = 0  # images per grid row; 0 = about square (conditional: one row per class)
    device: str = "cpu"  # where G runs: cpu, cuda, cuda:1, mps
    batch_size: int = 256  # samples generated per forward pass
    # cyclegan runs: the images to translate, a folder (read recursively, in the order of the files'
    # paths below it) or a uint8 .npy of shape (N, H, W) or (N, H, W, C), converted as the training
    # data was; the output keeps their order. A folder of PNGs out mirrors the input's: x/a.jpg ->
    # x/a.png; files that differ only in their suffix keep it (a.jpg -> a.jpg.png, a.png -> a.png.png)
    input: str | None = None
    direction: Translation = Translation.a2b  # cyclegan runs: a2b (G_AB) or b2a (G_BA)


@dataclass
class EvalCommand:
    run: str = "???"  # a run directory, or a checkpoint / generator.pt file
    # metrics to compute (modes2d | fid | kid | is | pr | classifier | parzen | stacked_modes);
    # [] = eval.metrics
    metrics: list[MetricName] = field(default_factory=lambda: [])  # type: ignore[valid-type]
    device: str = "cpu"  # where G and the metric networks run: cpu, cuda, cuda:1, mps
    data_root: str | None = None  # where the run's real data set lives now, if it moved
    out: str | None = None  # a .json file, or a folder for its eval.json; default: <run>/eval.json
    eval: EvalConfig = field(default_factory=EvalConfig)


SAMPLE_HELP = (
    "Draw samples from a trained generator (its EMA weights when the run has them). The extension of "
    "out= decides the format; the same seed gives the same samples."
)
SAMPLE_EXAMPLES = [
    "gan-sample run=outputs/runs/<time> n=64 out=grid.png                 # one grid image (.jpg, .webp ...)",
    "gan-sample run=outputs/runs/<time> n=10000 out=samples.npy seed=0    # uint8 (N, H, W, C) + labels",
    "gan-sample run=outputs/runs/<time> n=10000 out=samples.npz           # samples (and labels) in one file",
    "gan-sample run=outputs/runs/<time> n=100 out=samples/                # one PNG per sample",
    "gan-sample run=outputs/runs/<time> labels=[3,3,7] n=30 out=g.png     # conditional models",
    "gan-sample run=outputs/runs/<time> interpolate=8 n=64 out=walk.png   # slerp walks, 8 steps a row",
]
EVAL_HELP = (
    "Evaluate a trained generator (its EMA weights when the run has them): print a table and merge the "
    "results into the run's eval.json."
)
EVAL_EXAMPLES = [
    "gan-eval run=outputs/runs/<time> metrics=[modes2d]                   # ring8 / grid25",
    "gan-eval run=outputs/runs/<time> metrics=[classifier]                # offline, any labelled set",
    "gan-eval run=outputs/runs/<time> metrics=[parzen]                    # log-likelihood, GAN paper",
    "gan-eval run=outputs/runs/<time> metrics=[stacked_modes]             # Stacked MNIST: modes of 1,000",
    "gan-eval run=outputs/runs/<time> metrics=[fid,kid,is,pr] eval.inception_weights=~/weights.pth",
]
HELP = {
    "gan-sample": (SAMPLE_HELP, SAMPLE_EXAMPLES),
    "gan-eval": (EVAL_HELP, EVAL_EXAMPLES),
}


def parse(schema: type, argv: list[str], prog: str) -> Any:
    """key=value arguments -> a typed instance of `schema`; `--help` lists the keys."""
    if any(a in ("-h", "--help") for a in argv):
        from gan_cli.helptext import command_help

        summary, examples = HELP.get(prog, ("", []))
        print(command_help(schema, f"{prog} key=value ...", summary, examples))
        sys.exit(0)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise CommandError(f"arguments are key=value pairs; got {bad[0]!r} (see {prog} --help)")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise CommandError(f"{prog} needs {', '.join(m + '=...' for m in missing)}")
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        valid = ", ".join(f.name for f in fields(schema))
        raise CommandError(
            f"{str(e).splitlines()[0]} (full key: {getattr(e, 'full_key', '?')}). Valid keys: {valid}."
        ) from e


def _run_main(fn: Any, schema: type | None, prog: str) -> None:
    from gan_cli.cli import describe_failure

    try:
        fn(parse(schema, sys.argv[1:], prog) if schema else sys.argv[1:])
        finish()
    except Exception as e:  # noqa: BLE001 - what a user can fix is one paragraph; a bug keeps its traceback
        message = describe_failure(e) if not isinstance(e, UserError) else str(e)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(2)


def device_of(name: str) -> Any:
    """`device=` as a torch.device that exists on this machine, else a CommandError."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise CommandError(f"device={name} is not a device name (cpu, cuda, cuda:1, mps).") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"device={name}, but no CUDA GPU is available here; use device=cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CommandError(f"device={name}, but MPS is not available here; use device=cpu.")
    return device


# ---- gan-sample ---------------------------------------------------------------------------------
# Pillow's savers for these exist only as stubs that raise unless a third-party handler is installed
_STUB_FORMATS = ("BUFR", "GRIB", "HDF5", "WMF")
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}  # WebP: exact pixels, as PNG


def image_format(suffix: str) -> str | None:
    """A file extension (".jpg") -> the Pillow format that writes it ("JPEG"), or None."""
    from PIL import Image

    Image.init()
    fmt = Image.registered_extensions().get(suffix.lower())
    return fmt if fmt in Image.SAVE and fmt not in _STUB_FORMATS else None


@dataclass(frozen=True)
class SampleTarget:
    """What `out=` asks for: kind "image" (one grid or scatter, written by Pillow as `pil_format`),
    "npy", "npz", or "folder" (of PNGs, or of one samples.npy with `format=npy`)."""

    path: Path
    kind: str
    pil_format: str | None = None
    folder_format: SampleFormat = SampleFormat.png


def sample_target(out: str, fmt: SampleFormat | None) -> SampleTarget:
    """Read `out=` (and `format=`): the extension decides; `format` only says what a folder holds,
    and a `format` that contradicts the extension is a CommandError naming both."""
    path = Path(out).expanduser()
    suffix = path.suffix.lower()
    pil_format = image_format(suffix)
    if out.endswith(("/", os.sep)) or not (pil_format or suffix in (".npy", ".npz")):
        if path.is_file():
            raise CommandError(
                f"out={out} is an existing file, but a name without an image, .npy or .npz "
                "extension is a folder of samples; choose another name."
            )
        return SampleTarget(path, "folder", folder_format=fmt or SampleFormat.png)
    target = SampleTarget(path, suffix[1:] if suffix in (".npy", ".npz") else "image", pil_format)
    agrees = {SampleFormat.png: target.pil_format == "PNG", SampleFormat.npy: target.kind == "npy"}
    if fmt is not None and not agrees[fmt]:
        what = f"a {pil_format} image" if pil_format else f"a {suffix} file"
        raise CommandError(
            f"format={fmt.value} contradicts out={out} (its extension asks for {what}). The extension "
            f"decides the format of a file; format= only says what a folder holds: drop format=, or "
            f"name a folder (e.g. out={path.with_suffix('')}/ format={fmt.value})."
        )
    if path.is_dir():
        raise CommandError(
            f"out={out} is an existing folder (an older gan-sample made folders of such names); "
            f"remove it or choose another name for the {suffix} file."
        )
    return target


def _check_sample_command(cmd: SampleCommand) -> None:
    for key, low in (
        ("n", 1),
        ("batch_size", 1),
        ("interpolate", 0),
        ("nrow", 0),
        ("truncation", 0),
        ("psi", 0),
        ("style_mix", 0),
        ("mix_cutoff", 0),
    ):
        if getattr(cmd, key) < low:
            raise CommandError(f"{key} must be >= {low}, got {getattr(cmd, key)}.")


def sample(cmd: SampleCommand) -> Path:
    """Draw samples from a run's generator and write them where `out=` says; returns that path."""
    _check_sample_command(cmd)
    target = sample_target(cmd.out, cmd.format)
    # torch only now: a mistake in the arguments above is reported before the seconds its import takes
    import torch

    from gan_cli.latent import interpolate, sample_latents, truncation_problem
    from gan_cli.sampling import LoadedTranslator, generate, is_style_based, load_run, mapped, synthesise

    loaded = load_run(cmd.run, device_of(cmd.device))
    if isinstance(loaded, LoadedTranslator):
        return translate_images(loaded, cmd, target)
    translation_only = [k for k in ("input", "direction") if getattr(cmd, k) != _SAMPLE_DEFAULTS[k]]
    if translation_only:
        raise CommandError(
            f"{', '.join(k + '=' for k in translation_only)} {'is' if len(translation_only) == 1 else 'are'} "
            "for translation runs (model=cyclegan); this run samples from noise."
        )
    gen = loaded
    problem = truncation_problem(gen.model, cmd.truncation)
    if problem:
        raise CommandError(problem)
    styled = is_style_based(gen)
    style_only = [k for k in ("psi", "style_mix", "mix_cutoff") if getattr(cmd, k) != _SAMPLE_DEFAULTS[k]]
    if style_only and not styled:
        raise CommandError(
            f"{', '.join(k + '=' for k in style_only)}: w space is a style-based generator's "
            f"(model=stylegan2); this run is model={gen.model.name.value} (truncation= truncates z)."
        )
    rng = torch.Generator().manual_seed(cmd.seed)
    z_dim = gen.model.z_dim
    if cmd.style_mix:
        return _style_mixing(gen, cmd, target, rng)
    if cmd.interpolate > 0 and styled:  # walks in w: straight lines between mapped codes
        rows = max(1, cmd.n // cmd.interpolate)
        a, b = (sample_latents(gen.model, rows, rng, cmd.truncation) for _ in range(2))
        y = _sample_labels(gen, cmd, rows * cmd.interpolate)
        y_rows = y[:: cmd.interpolate] if y is not None else None
        w_a, w_b = (mapped(gen, z, y_rows, cmd.psi) for z in (a, b))
        t = torch.linspace(0, 1, cmd.interpolate, device=w_a.device).view(1, -1, 1, 1)
        ws = w_a[:, None].lerp(w_b[:, None], t).flatten(0, 1)
        x = synthesise(gen, ws, cmd.batch_size)
        what = write_samples(target, x, y, cmd.interpolate)
        print(f"{len(x)} samples from {gen.source} (step {gen.step}; walks in w) -> {what}")
        return target.path
    if cmd.interpolate > 0:
        rows = max(1, cmd.n // cmd.interpolate)
        a, b = (sample_latents(gen.model, rows, rng, cmd.truncation) for _ in range(2))
        t = torch.linspace(0, 1, cmd.interpolate).view(1, -1, 1)
        z = interpolate(gen.model, a[:, None], b[:, None], t).reshape(-1, z_dim)
        nrow = cmd.interpolate
    else:
        z = sample_latents(gen.model, cmd.n, rng, cmd.truncation)
        nrow = cmd.nrow
    y = None
    if gen.conditional:
        if cmd.labels:
            bad = [c for c in cmd.labels if not 0 <= c < gen.num_classes]
            if bad:
                raise CommandError(f"labels {bad} are not classes of this model (0..{gen.num_classes - 1}).")
            y = torch.tensor(cmd.labels).repeat(len(z) // len(cmd.labels) + 1)[: len(z)]
        elif cmd.interpolate > 0:
            y = (torch.arange(len(z)) // cmd.interpolate) % gen.num_classes
        else:
            y = torch.arange(len(z)) % gen.num_classes
            nrow = nrow or gen.num_classes
    elif cmd.labels:
        raise CommandError("labels= is for conditional models; this generator is unconditional.")
    x = generate(gen, z, y, cmd.batch_size, cmd.psi)
    scatter_modes = None
    if x.dim() != 4:
        from gan_cli.data import mixture_modes

        name = gen.data.name.value
        scatter_modes = mixture_modes(name) if name in ("ring8", "grid25") else None
    what = write_samples(target, x, y, nrow or max(1, round(len(x) ** 0.5)), scatter_modes)
    weights = "EMA" if gen.ema else "raw"
    print(f"{len(x)} samples from {gen.source} (step {gen.step}, {weights} weights) -> {what}")
    return target.path


def _sample_labels(gen: Any, cmd: SampleCommand, n: int) -> Any:
    """Class labels for n samples of a conditional G (labels= cycled, else one class per row of a
    walk), None for an unconditional one."""
    import torch

    if not gen.conditional:
        return None
    if cmd.labels:
        return torch.tensor(cmd.labels).repeat(n // len(cmd.labels) + 1)[:n]
    return (torch.arange(n) // max(cmd.interpolate, 1)) % gen.num_classes


def _style_mixing(gen: Any, cmd: SampleCommand, target: SampleTarget, rng: Any) -> Path:
    """gan-sample style_mix=K: the K x K style-mixing grid (sampling.style_mixing_grid)."""
    from gan_cli.latent import sample_latents
    from gan_cli.sampling import style_mixing_grid

    if gen.conditional:
        raise CommandError("style_mix= draws unconditional codes; this StyleGAN2 is class-conditional.")
    num_ws = gen.g.num_ws
    cutoff = cmd.mix_cutoff or num_ws // 2
    if not 0 < cutoff < num_ws:
        raise CommandError(f"mix_cutoff must be a layer between 1 and {num_ws - 1} (this G has {num_ws} ws).")
    rows, cols = (sample_latents(gen.model, cmd.style_mix, rng, cmd.truncation) for _ in range(2))
    x = style_mixing_grid(gen, rows, cols, cutoff, cmd.psi)
    what = write_samples(target, x, None, cmd.style_mix + 1)
    print(
        f"style mixing from {gen.source} (step {gen.step}): coarse styles (ws 0-{cutoff - 1}) from each "
        f"row's code, fine ones ({cutoff}-{num_ws - 1}) from each column's -> {what}"
    )
    return target.path


# gan-sample's settings that draw from a noise generator: a translation run has none to draw from
_NOISE_ONLY = ("n", "seed", "labels", "truncation", "interpolate", "psi", "style_mix", "mix_cutoff")
_SAMPLE_DEFAULTS = {f.name: f.default for f in fields(SampleCommand)}


def translate_images(tr: Any, cmd: SampleCommand, target: SampleTarget) -> Path:
    """gan-sample for a CycleGAN run: translate cmd.input in cmd.direction, written in the
    input's order in the format `out=` names (a folder of PNGs mirrors an input folder: its
    relative paths, each suffix replaced by .png, or kept before it where two files differ only in
    their suffix). Settings that only sampling from noise uses (n=, seed=, labels=, truncation=,
    interpolate=) are refused: a CommandError names them."""
    noise_only = [k for k in _NOISE_ONLY if getattr(cmd, k) != _SAMPLE_DEFAULTS[k]]
    if noise_only:
        raise CommandError(
            f"{', '.join(f'{k}=' for k in noise_only)}: {tr.source} is a translation run "
            "(model=cyclegan), which translates each image of input= once and draws no noise; drop "
            f"{'it' if len(noise_only) == 1 else 'them'} (nrow=, batch_size=, device=, out= and format= "
            "apply)."
        )
    if cmd.input is None:
        raise CommandError(
            f"{tr.source} is a translation run (model=cyclegan): give the images to translate with "
            "input=<folder or .npy> and direction=a2b|b2a."
        )
    direction = cmd.direction.value
    source, _ = tr.domain(direction)
    x, names = read_translation_input(Path(cmd.input).expanduser(), source.channels, tr.data.image_size)
    y = tr.translate(x, direction, cmd.batch_size)
    if target.kind == "folder" and target.folder_format == SampleFormat.png and names is not None:
        from gan_cli.logs import save_png

        for img, name in zip(y, names, strict=True):
            path = target.path / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_png(img.add(1).div(2).clamp(0, 1), path)
        what = f"{target.path}/ ({len(y)} PNG files named as the inputs)"
    else:
        what = write_samples(target, y, None, cmd.nrow or max(1, round(len(y) ** 0.5)))
    print(f"{len(y)} images translated {direction} by {tr.source} (step {tr.step}) -> {what}")
    return target.path


def output_names(files: list[Path], root: Path) -> list[str]:
    """Unique output names (without an extension) for image files below `root`, in their order:
    each file's path relative to `root` without its suffix ("x/a" for x/a.jpg); where files would
    share a name (letter case aside: a.jpg and a.png), with their suffix ("a.jpg", "a.png"); and a
    name still taken gets "-2", "-3", ... ."""
    from collections import Counter

    relative = [p.relative_to(root) for p in files]
    names = [r.with_suffix("").as_posix() for r in relative]
    shared = Counter(n.casefold() for n in names)
    names = [r.as_posix() if shared[n.casefold()] > 1 else n for r, n in zip(relative, names, strict=True)]
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, k = name, 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{name}-{k}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def read_translation_input(path: Path, channels: int, size: int) -> tuple[Any, list[str] | None]:
    """Images to translate -> ([-1, 1] (N, channels, size, size), their output names or None): a
    folder of image files (read recursively in the order of their paths, decoded and fitted as
    image_folder training data is; named by `output_names`) or a uint8 .npy of shape (N, H, W) or
    (N, H, W, C) (fitted as array data sets are)."""
    import numpy as np
    import torch

    from gan_cli.data import DataError, to_model_range
    from gan_cli.data.common import fit_array
    from gan_cli.data.files import read_image_file, scan_images

    if path.is_dir():
        files = scan_images(path)
        if not files:
            raise CommandError(f"input={path}: no image files in this folder.")
        try:
            x = torch.stack([read_image_file(f, channels, size) for f in files])
        except DataError as e:
            raise CommandError(f"input={path}: {e}") from e
        return to_model_range(x), output_names(files, path)
    if path.suffix.lower() == ".npy" and path.is_file():
        arr = np.load(path, allow_pickle=False)
        if (
            arr.dtype != np.uint8
            or arr.ndim not in (3, 4)
            or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4))
        ):
            raise CommandError(
                f"input={path}: expected uint8 images of shape (N, H, W) or (N, H, W, C) with C 1, 3 or 4; "
                f"got {arr.dtype} {arr.shape}."
            )
        x = torch.from_numpy(arr[..., None] if arr.ndim == 3 else arr[..., :3]).permute(0, 3, 1, 2)
        if x.shape[-1] != x.shape[-2]:
            raise CommandError(f"input={path}: images must be square (H = W), got {tuple(arr.shape[1:3])}.")
        return to_model_range(fit_array(x.contiguous(), channels, size)), None
    raise CommandError(f"input={path}: give a folder of images or a .npy file of uint8 images.")


def write_samples(target: SampleTarget, x: Any, y: Any, nrow: int, modes: Any = None) -> str:
    """Write samples `x` ([-1, 1] NCHW images, or (N, dim) points) and labels `y` (int64 (N,) or
    None) as `target` says; returns what was written, for the user. Images go to arrays as uint8
    (N, H, W, C) (the layout FID tools read), points as float32 (N, dim)."""
    import numpy as np
    import torch
    from PIL import Image

    from gan_cli.logs import image_grid, save_png, scatter_image
    from gan_cli.sampling import to_uint8

    path, is_image = target.path, x.dim() == 4
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(x).permute(0, 2, 3, 1).numpy() if is_image else x.numpy().astype(np.float32)
    labels = y.numpy() if y is not None else None
    shape = f"{arr.dtype} {tuple(arr.shape)}"
    if target.kind == "image":
        picture = image_grid(x, nrow) if is_image else scatter_image(x, modes)
        pixels = picture.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        try:
            Image.fromarray(pixels).save(
                path, format=target.pil_format, **_SAVE_OPTIONS.get(target.pil_format, {})
            )
        except (OSError, ValueError, KeyError) as e:
            raise CommandError(
                f"Pillow cannot write {path.name} as {target.pil_format} ({e}); use .png."
            ) from e
        kind = f"a grid of {nrow} a row" if is_image else "a scatter of the points"
        return f"{path} ({target.pil_format}, {kind})"
    if target.kind == "npz":
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to "X.NPZ"
            np.savez(f, samples=arr, **({"labels": labels} if labels is not None else {}))
        return f"{path} (samples: {shape}{', labels' if labels is not None else ''})"
    if target.kind == "folder" and target.folder_format == SampleFormat.png:
        if not is_image:
            raise CommandError("2-D samples go to an image (a scatter), a .npy or a .npz file, not a folder.")
        path.mkdir(parents=True, exist_ok=True)
        stale = sorted(p.name for p in path.glob("[0-9]" * 6 + ".png") if int(p.stem) >= len(x))
        if stale:
            raise CommandError(
                f"out={path} already holds {len(stale)} sample PNGs numbered from {len(x)} on "
                f"({stale[0]} ...), from an earlier run with more samples; they would mix with these "
                f"{len(x)}. Empty the folder or choose another."
            )
        for i, img in enumerate(x):
            save_png(img.add(1).div(2).clamp(0, 1), path / f"{i:06d}.png")
        return f"{path}/ ({len(x)} PNG files, 000000.png ...)"
    if target.kind == "folder":
        path.mkdir(parents=True, exist_ok=True)
        path = path / "samples.npy"
    with open(path, "wb") as f:  # a file object: np.save would append .npy to "X.NPY"
        np.save(f, arr)
    if labels is None:
        return f"{path} ({shape})"
    labels_path = path.with_name(path.stem + "_labels.npy")
    with open(labels_path, "wb") as f:
        np.save(f, labels)
    return f"{path} ({shape}) and {labels_path.name}"


def sample_main() -> None:
    """Console script `gan-sample`."""
    _run_main(sample, SampleCommand, "gan-sample")


# ---- gan-eval -----------------------------------------------------------------------------------
def format_table(results: dict[str, Any]) -> str:
    lines = [f"{'metric':24s} value", f"{'-' * 24} {'-' * 20}"]
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:24s} {shown}")
    return "\n".join(lines)


def eval_out(out: str) -> Path:
    """`out=` of gan-eval -> the JSON file it names: a .json file, or eval.json in a folder (an
    existing one, or one written with a trailing /); another extension is a CommandError."""
    path = Path(out).expanduser()
    if path.is_dir() or out.endswith(("/", os.sep)):
        return path / "eval.json"
    if path.suffix.lower() != ".json":
        raise CommandError(
            f"out={out}: gan-eval writes JSON; name a .json file or a folder (which gets eval.json)."
        )
    return path


def check_eval_settings(ev: EvalConfig) -> None:
    """The eval.* ranges gan-train checks (schema.MINIMUM), before any run is loaded; a
    CommandError lists every value out of range. (Sample counts too small for the chosen
    metrics are refused by the metrics' own preflight.)"""
    from gan_cli.schema import MINIMUM

    problems = [
        f"{key} must be >= {low:g}, got {value}"
        for key, low in MINIMUM.items()
        if key.startswith("eval.") and (value := getattr(ev, key[len("eval.") :])) is not None and value < low
    ]
    if problems:
        raise CommandError(f"Invalid settings: {'; '.join(problems)}.")


def evaluate_run(cmd: EvalCommand) -> dict[str, Any]:
    metrics = [m.value for m in cmd.metrics] or [m.value for m in cmd.eval.metrics]
    if not metrics:
        raise CommandError(
            "name the metrics, e.g. metrics=[modes2d] or metrics=[fid,kid,pr] or metrics=[classifier]"
        )
    check_eval_settings(cmd.eval)
    out = eval_out(cmd.out) if cmd.out else None  # before the (long) evaluation
    # torch only now: a mistake in the arguments above is reported before the seconds its import takes
    from gan_cli.logs import json_safe
    from gan_cli.metrics import evaluate
    from gan_cli.metrics.features import sample_count
    from gan_cli.sampling import LoadedTranslator, load_run

    device = device_of(cmd.device)
    gen = load_run(cmd.run, device)
    if isinstance(gen, LoadedTranslator):
        from gan_cli.metrics.translation import evaluate_translation

        if cmd.data_root:
            raise CommandError("data_root= names one data set; a translation run's are data.a and data.b.")
        results = evaluate_translation(gen, metrics, cmd.eval, device)
        record = {"step": gen.step, "checkpoint": str(gen.source), **results}
    else:
        if cmd.data_root:
            gen.data.root = cmd.data_root
        results = evaluate(gen, metrics, cmd.eval, device)
        record = {
            "step": gen.step,
            "checkpoint": str(gen.source),
            "ema": gen.ema,
            "n_samples": sample_count(cmd.eval.n_samples, metrics),
            **results,
        }
    run = Path(cmd.run).expanduser()
    out = out or (run if run.is_dir() else gen.source.parent.parent) / "eval.json"
    previous = json.loads(out.read_text()) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe({**previous, **record}), indent=2) + "\n")
    print(format_table(record))
    if "note" in results:
        print(f"note: {results['note']}")
    print(f"written to {out}")
    return record


def eval_main() -> None:
    """Console script `gan-eval`."""
    _run_main(evaluate_run, EvalCommand, "gan-eval")


# ---- gan-report ---------------------------------------------------------------------------------
REPORT_USAGE = """usage: gan-report <sweep folder or run folders...> [out=<folder>]

Summarise finished or running jobs (folders with metrics.jsonl): one row per job with its overrides,
status, steps, wall time, warnings raised and final / best metrics. Writes report.md, report.csv and
report.png into the folder out= (default: the first folder given) and prints the table.

examples:
  gan-report outputs/sweeps/<time>
  gan-report outputs/runs/<a> outputs/runs/<b> out=compare/"""
# names that are files, not the folder that out= is
_REPORT_FILE_SUFFIXES = (".md", ".csv", ".png", ".txt", ".html", ".json")


def report_main() -> None:
    """Console script `gan-report <sweep folder> [more folders...]`."""
    from gan_cli.report import report

    def run(args: list[str]) -> None:
        if not args or args[0] in ("-h", "--help"):
            print(REPORT_USAGE)
            sys.exit(0 if args else 2)
        out = next((a.split("=", 1)[1] for a in args if a.startswith("out=")), None)
        if out and Path(out).suffix.lower() in _REPORT_FILE_SUFFIXES and not Path(out).is_dir():
            raise CommandError(
                f"out={out}: out= is the folder that gets report.md, report.csv and report.png; "
                f"name a folder (e.g. out={Path(out).with_suffix('')})."
            )
        report([Path(a) for a in args if not a.startswith("out=")], Path(out) if out else None)

    _run_main(run, None, "gan-report")

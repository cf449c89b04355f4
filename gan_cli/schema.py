"""Structured configs: the typed schema every YAML file and command-line override is checked against.

Each group (`data`, `model`, `loss`, `optim`, `trainer`) is one dataclass. The whole tree is
registered as `base_config` in Hydra's ConfigStore and sits first in `configs/config.yaml`'s
defaults list, so an unknown key, a wrong type or an invalid choice fails at composition time,
before any work, with a message naming the key.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gan_cli.errors import UserError


class DataName(str, Enum):
    mnist5k = "mnist5k"
    ring8 = "ring8"
    grid25 = "grid25"
    fake = "fake"
    mnist = "mnist"
    fashion_mnist = "fashion_mnist"
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    svhn = "svhn"
    celeba = "celeba"
    image_folder = "image_folder"
    digits = "digits"  # scikit-learn's 1,797 8x8 digits (inside the installed package), upscaled
    unpaired = "unpaired"  # two image sets, data.a and data.b, for translation (model=cyclegan)
    # three random digits as the R, G, B channels: 1,000 modes (VEEGAN, Srivastava et al. 2017)
    stacked_mnist5k = "stacked_mnist5k"  # of the embedded MNIST-5k
    stacked_mnist = "stacked_mnist"  # of torchvision's MNIST in data.root


class Labels(str, Enum):
    none = "none"
    subfolders = "subfolders"  # image_folder: the first folder level below data.root is the class


class ModelName(str, Enum):
    mlp = "mlp"
    dcgan = "dcgan"
    cgan = "cgan"
    cyclegan = "cyclegan"  # unpaired image-to-image translation (games/cyclegan.py)
    stylegan2 = "stylegan2"  # style-based generator, lazy R1, path length (games/stylegan2.py)


class CondMode(str, Enum):
    projection = "projection"  # Miyato & Koyama 2018: logit += <embed(y), features(x)>
    concat = "concat"  # one-hot label maps stacked onto the image channels
    none = "none"  # stylegan2: unconditional (projection: labels into the mapping network and D)


class Norm(str, Enum):
    auto = "auto"  # batch norm, except layer norm in D for wgan_gp (the penalty is per sample)
    batch = "batch"
    layer = "layer"
    instance = "instance"  # per sample and channel, no affine (CycleGAN)
    virtual_batch = "virtual_batch"  # mlp G: statistics of a fixed reference batch (Salimans et al. 2016)
    none = "none"


class ZPrior(str, Enum):
    normal = "normal"  # standard normal N(0, I)
    uniform = "uniform"  # U[-1, 1] per component
    truncated = "truncated"  # standard normal, every component beyond model.z_truncation redrawn


class Activation(str, Enum):
    relu = "relu"
    leaky_relu = "leaky_relu"  # slope 0.2


class GOutput(str, Enum):
    linear = "linear"  # the reference's: the skip sum as it is
    tanh = "tanh"  # squashed into (-1, 1), as DCGAN's


class LossName(str, Enum):
    minimax = "minimax"
    nonsaturating = "nonsaturating"
    wgan = "wgan"
    wgan_gp = "wgan_gp"
    hinge = "hinge"
    lsgan = "lsgan"


class Schedule(str, Enum):
    constant = "constant"
    linear = "linear"  # linear decay to 0 over optim.schedule_steps
    cosine = "cosine"  # cosine decay to 0 over optim.schedule_steps


class OptimName(str, Enum):
    adam = "adam"
    rmsprop = "rmsprop"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"  # bf16 on a CUDA GPU that supports it, else fp32
    # bf16 where the device computes it natively (such a CUDA GPU, or an x86 CPU with AVX512-BF16 or
    # AMX), else fp32 (MPS, other CPUs): faster on those CPUs, never emulated where it would be slow
    bf16_native = "bf16_native"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class OnNonFinite(str, Enum):
    stop = "stop"  # stop with a message naming the step and the loss; checkpoints stay intact
    skip = "skip"  # drop the update of any step whose loss is not finite (one host sync a step)
    rollback = "rollback"  # reload the last good checkpoint and scale the learning rates down


@dataclass
class DomainConfig:
    """One data set."""

    name: DataName = MISSING
    root: str | None = None  # where the files live (searched, or downloaded into)
    download: bool = False  # fetch a missing torchvision set (needs network)
    verify: bool = True  # torchvision sets: check each file's checksum (false: trust damaged files)
    split: str = "train"  # torchvision split: train | test (svhn: train | test | extra; celeba: all ...)
    channels: int = 1  # images: 1 (grey) or 3 (RGB); 0 for vector data
    image_size: int = 32  # images: height = width in pixels; 0 for vector data
    dim: int = 0  # vector data (2-D point sets): its dimension; 0 for images
    num_classes: int = 0  # 0 = unlabelled
    size: int = 5000  # number of items, for generated sets (fake, ring8, grid25, stacked_mnist*)
    seed: int = 0  # seed of generated sets, independent of trainer.seed
    std: float = 0.0  # std of each Gaussian mode (ring8, grid25)
    labels: Labels = Labels.none  # image_folder: where class labels come from
    skip_bad: bool = False  # image_folder: skip unreadable files (with a count) instead of failing
    subset: int = 0  # keep this many items (a seeded random choice by data.seed); 0 = all
    classes: list[int] | None = None  # keep only these classes, relabelled 0..len-1 in this order
    hflip: bool = False  # random horizontal flips, per batch on the training device
    preload_max_mb: int = 1024  # decode sets up to this size once into memory (and the device)
    cache: bool = True  # keep decoded image-file sets next to the data for a fast second start
    num_workers: int = 2  # DataLoader workers, for sets too large to preload


@dataclass
class DataConfig(DomainConfig):
    """The data set of a run: one set, or (data.name=unpaired) the two domains of a translation."""

    a: DomainConfig | None = None  # unpaired: domain A (any set above, with its own keys)
    b: DomainConfig | None = None  # unpaired: domain B


@dataclass
class ModelConfig:
    name: ModelName = MISSING
    z_dim: int = 100  # length of G's latent code z
    # latent prior: 0 = standard normal; K > 0 = a mixture of K Gaussians with fixed means spread
    # over [-1, 1]^z_dim and std z_component_std (GM-GAN, Ben-Yosef & Weinshall 2018): its empty
    # gaps let G jump between separate modes without samples in between (latent.py)
    z_components: int = 0
    z_component_std: float = 0.03  # std of each latent mixture component (z_components > 0)
    # shape of the latent prior: normal | uniform (U[-1, 1] per component) | truncated (normal with
    # every component beyond z_truncation redrawn); with z_components > 0, the shape of each code's
    # offset from its component's mean, scaled by z_component_std (uniform: the box's half-width)
    z_prior: ZPrior = ZPrior.normal
    z_truncation: float = 2.0  # z_prior=truncated: the bound |z_i| <= this
    # mlp: hidden widths of G (input to output) and D (input to output)
    g_hidden: list[int] = field(default_factory=lambda: [128, 256, 512, 1024])
    d_hidden: list[int] = field(
        default_factory=lambda: [512, 256]
    )  # mlp: hidden widths of D (input to output)
    g_activation: Activation = Activation.leaky_relu  # mlp G: relu can map whole regions of z to one point
    d_maxout: int = 0  # mlp D: > 1 = maxout units of this many pieces (the PacGAN paper's D uses 5)
    # dcgan / cgan: feature maps of the widest layer is g_channels * 2**(blocks-1)
    g_channels: int = 64
    # dcgan / cgan: side of G's first feature map and D's last; 0 = auto (4 for powers of two, 7 at
    # 28 px, 5 at 20 px); another side that halving the image with rounding up reaches (28 px: 14, 7,
    # 4, 2, 1), e.g. 4 at 28 px for the Unrolled GAN paper's 4 -> 7 -> 14 -> 28 generator
    base_size: int = 0
    # dcgan / cgan: G's last stride-2 stage keeps g_channels maps (norm, ReLU) and a 3x3 stride-1 conv
    # makes the image (Metz et al. 2017's Stacked MNIST G); its widest layer is g_channels * 2**blocks
    g_out_conv: bool = False
    d_channels: int = 64  # dcgan / cgan: feature maps of D's first layer (doubling towards the output)
    g_norm: Norm = Norm.auto  # normalisation in G; auto = batch (cyclegan: instance)
    d_norm: Norm = (
        Norm.auto
    )  # normalisation in D; auto = batch, layer norm for wgan_gp (the penalty is per sample)
    vbn_ref_size: int = 64  # g_norm=virtual_batch: size of the reference batch of latents, drawn once
    # cgan
    embed_dim: int = 50  # cgan: length of the label embedding G sees
    cond: CondMode = CondMode.projection  # cgan: how D sees the label
    # stabilisers
    spectral_norm_d: bool = False  # spectral normalisation of D's layers (Miyato et al. 2018)
    spectral_norm_g: bool = False  # spectral normalisation of G's layers
    pack: int = 1  # PacGAN: D judges `pack` samples at once (Lin et al. 2018); batch divisible by it
    mbstd: bool = False  # minibatch standard-deviation feature in D (Karras et al. 2018; mlp, dcgan)
    # minibatch discrimination in D (Salimans et al. 2016, sec. 3.2; mlp, dcgan, cgan): each sample's
    # L1 closeness to the others of its batch (of its rank's batch under torchrun; of its packed
    # group's batch with model.pack) in mbd_kernels learned projections, next to D's last features;
    # not with loss=wgan_gp, whose penalty is per sample
    minibatch_discrimination: bool = False
    mbd_kernels: int = 100  # minibatch discrimination: kernels B (the reference code's 100)
    mbd_dim: int = 5  # minibatch discrimination: dimension C of each kernel's projection
    # cyclegan: residual blocks of the ResNet generators (the paper: 9 at 256 px, 6 at 128 px) and
    # stride-2 layers of the PatchGAN discriminators (3: 70x70 patches, the whole image at 32 px)
    res_blocks: int = 6
    d_layers: int = 3
    # stylegan2 (Karras et al. 2020): w's length, the mapping network's depth (8 in the paper, 2 at
    # 32 px), and the channel budget: min(channel_base // resolution, channel_max) feature maps
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    # stylegan2: samples per group of D's minibatch-std layer (the reference's 4; 32 in its cifar
    # config, which sees a diversity problem across the whole batch of 32)
    mbstd_group: int = 4
    # stylegan2: G's last operation. linear (the reference's) leaves a near-binary set such as MNIST
    # (85 % of its 32 px pixels exactly -1) an easy cue for D, the background's exact value, and G chasing
    # it collapses to one digit at 32 px on a CPU budget; tanh (DCGAN's) makes -1 reachable (README)
    g_output: GOutput = GOutput.linear


@dataclass
class LossConfig:
    name: LossName = MISSING
    n_critic: int = 1  # D steps per G step
    # G updates per step, the later ones through a fresh G forward of the same z (the DCGAN-tensorflow
    # code behind PacGAN's Stacked MNIST runs takes 2, "to make sure that d_loss does not go to zero")
    g_steps: int = 1
    # the step from which G takes one update per step again (0: loss.g_steps for the whole run): the
    # extra G steps only through the early phase in which D can win outright (README "Stacked MNIST")
    g_steps_until: int = 0
    gp_weight: float = 10.0  # wgan_gp
    clip: float = 0.01  # wgan weight clipping
    r1_gamma: float = 0.0  # R1 penalty gamma/2 E||grad D(x_real)||^2 (Mescheder et al. 2018); 0 = off
    label_smoothing: float = 0.0  # one-sided: real target 1 - this (minimax, nonsaturating)
    feature_matching: bool = False  # G matches mean D features of real data (Salimans et al. 2016)
    # top-k G updates (Sinha et al. 2020): G learns only from the fraction of its batch that D rates
    # most realistic, annealed linearly from 1 to top_k over top_k_steps (0: top_k from the start)
    top_k: float = 1.0
    top_k_steps: int = 0  # steps over which top_k is annealed from 1; 0 = top_k from the start
    unroll_steps: int = 0  # unrolled GAN: G steps against D k Adam steps ahead (Metz et al. 2017); 0 = off
    # a kernel two-sample term added to G's loss (GMMN, Li et al. 2015): mmd_weight x the unbiased
    # MMD^2 between G's batch and the real batch under Gaussian kernels of these bandwidths (data
    # units; [] = data.std x 1, 2, 4, 8, for the 2-D mixtures); 0 = off. loss/g includes it.
    mmd_weight: float = 0.0
    mmd_bandwidths: list[float] = field(default_factory=list)
    # cyclegan (Zhu et al. 2017): L1 cycle-consistency weight per direction, and the identity loss's
    # weight relative to it (0 = off; needs data.a and data.b with the same channels)
    cycle_weight: float = 10.0
    identity_weight: float = 0.5
    # cyclegan: CyCADA's semantic consistency (Hoffman et al. 2018, eq. 4), 0 = off: a classifier of
    # domain A, trained once on A's labels (with random stroke sharpness) and frozen, must give a
    # translation the class it gives the untranslated image, both ways (needs a labelled data.a;
    # 3 in experiment=cycada_digits2mnist)
    semantic_weight: float = 0.0
    # stylegan2 (Karras et al. 2020): lazy R1 every r1_interval D steps (its weight loss.r1_gamma),
    # path-length regularisation (weight 0 = off; 2 in the paper) every pl_interval G steps on
    # batch / pl_batch_shrink samples, and style mixing with this probability
    r1_interval: int = 16
    pl_weight: float = 0.0
    pl_interval: int = 4
    pl_decay: float = 0.01  # the running mean of path lengths moves by this fraction a step
    pl_batch_shrink: int = 2
    style_mixing: float = 0.9


@dataclass
class OptimConfig:
    name: OptimName = OptimName.adam
    lr_g: float = 2e-4  # G's learning rate
    lr_d: float = 2e-4  # D's learning rate
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # Adam only
    weight_decay: float = 0.0  # L2 weight decay of both optimizers
    # learning-rate schedule of both optimizers (two timescales: set lr_g and lr_d apart)
    schedule: Schedule = Schedule.constant
    schedule_steps: int = 0  # horizon of the decay in G steps; 0 = trainer.steps
    warmup_steps: int = 0  # linear warm-up from 0
    decay_start: float = 0.0  # linear / cosine: hold the rate for this fraction of the horizon, then decay


@dataclass
class HealthConfig:
    overpower_real: float = 0.99  # D_OVERPOWERS: window mean d/real above this ...
    overpower_fake: float = 0.01  # ... and d/fake below this
    failing_real: float = 0.5  # D_FAILING: window mean d/real below this
    collapse_ratio: float = 0.1  # G_COLLAPSE: diversity below this fraction of a real batch's
    diversity_samples: int = 64  # fixed-noise samples (and real ones) the diversity is measured on
    warmup: int = 200  # steps before D_OVERPOWERS / D_FAILING / G_COLLAPSE may be raised


@dataclass
class TrainerConfig:
    steps: int = 2300  # G updates
    batch_size: int = 32  # samples per D and G step (per rank under torchrun)
    seed: int = 0  # seeds weights, noise and data order: the same seed gives the same run
    device: Device = Device.auto  # auto = cuda if available, else mps, else cpu
    # autocast dtype; auto = bf16 on a CUDA GPU that supports it, else fp32; bf16_native = bf16 also
    # on an x86 CPU with bf16 instructions
    precision: Precision = Precision.auto
    log_every: int = 50  # health metrics to the terminal, TensorBoard and metrics.jsonl
    sample_every: int = 500  # fixed-noise grid to samples/ and TensorBoard (and at the end)
    ckpt_every: int = 1000  # checkpoints/step_*.pt and last.pt (and at the end)
    keep_ckpts: int = 3  # newest step checkpoints kept besides last.pt
    n_samples: int = 64  # fixed-noise grid size (conditional: samples per class row = n // classes)
    ema_decay: float = 0.999  # EMA of G's weights (warmed up: min(decay, (1+t)/(10+t))); 0 = off
    # BatchNorm statistics of the EMA generator re-estimated from this many batches of fixed noise
    # before it is sampled, evaluated or saved; 0 = keep the live G's (which fit other weights)
    ema_bn_batches: int = 8
    # stylegan2: the EMA's half-life in thousands of images seen (Karras et al. 2020: 10 at batch 32),
    # ramped up as ema_rampup x images seen so far (0 = no ramp); ema_kimg 0 = use ema_decay per step
    ema_kimg: float = 0.0
    ema_rampup: float = 0.0
    on_nonfinite: OnNonFinite = OnNonFinite.stop  # NaN/inf: stop, skip the update, or roll back
    rollback_lr_factor: float = 0.5  # on_nonfinite=rollback: learning rates scaled by this per rollback
    skip_limit: int = 100  # on_nonfinite=skip: stop after this many updates skipped in a row
    pool_size: int = 50  # cyclegan: past fakes the discriminators also see (Shrivastava et al. 2017); 0 = off
    # intra-op CPU threads of this process; 0 = auto: the CPUs this process may use, shared among the
    # processes gan-cli started on this machine (torchrun's local ranks, a joblib sweep's parallel jobs)
    # less the DataLoader workers of a streamed data set; an explicit OMP_NUM_THREADS is honoured
    threads: int = 0
    diffaugment: list[str] = field(default_factory=list)  # DiffAugment: any of color, translation, cutout
    # ADA (Karras et al. 2020): every image D sees goes through ada_pipe, each transform applied per
    # sample with probability p; every ada_interval D steps p moves to bring E[sign(D(x_real))] to ada_target
    ada: bool = False
    ada_pipe: list[str] = field(default_factory=lambda: ["bgc"])  # groups blit|geom|color|bg|bgc, or xflip...
    ada_target: float = 0.6  # the r_t = E[sign(D(x_real))] that p steers towards
    ada_interval: int = 4  # D steps between adjustments of p
    ada_kimg: float = 500.0  # thousands of real images for p to go 0 -> 1 (500 as the paper; ~5 for CPU runs)
    ada_p: float = 0.0  # p at the start
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs (Sonderby et al. 2017) ...
    instance_noise_steps: int = 0  # ... annealed linearly to 0 over this many steps (0 = constant)
    sync_bn: bool = False  # torchrun: BatchNorm statistics over all ranks (SyncBatchNorm), else per rank
    compile: bool = False  # torch.compile G and D (see README for where it helps)
    progress: bool = True  # tqdm bar
    tensorboard: bool = True  # write TensorBoard events to tb/
    objective: str = "diversity"  # metric returned to a sweeper (a key of metrics.jsonl)
    health: HealthConfig = field(default_factory=HealthConfig)


# modes2d: 2-D mixtures (PacGAN protocol); fid, kid, is, pr: with the standard Inception weights;
# classifier: offline, with a small classifier trained on the labelled real set; parzen: the
# Parzen-window log-likelihood of the original GAN paper. (Functional form because `is` is a Python
# keyword and OmegaConf matches enum members by name.)
# stacked_modes: the digit triples of Stacked MNIST (VEEGAN / PacGAN protocol).
MetricName = Enum(  # type: ignore[misc]
    "MetricName",
    [(m, m) for m in ("modes2d", "fid", "kid", "is", "pr", "classifier", "parzen", "stacked_modes")],
    type=str,
)


class Direction(str, Enum):
    min = "min"
    max = "max"


@dataclass
class EvalConfig:
    every: int = 0  # evaluate during training every N steps (and at the end); 0 = never
    # modes2d | fid | kid | is | pr | classifier | parzen | stacked_modes
    metrics: list[MetricName] = field(default_factory=list)
    # generated samples per evaluation; null = the protocol's count: 26,000 when stacked_modes is
    # asked for (PacGAN's), else 10,000 (modes2d always uses 2,500)
    n_samples: int | None = None
    real_samples: int = 10000  # real samples for reference statistics (at most the whole set)
    best: str | None = None  # a metric key (e.g. fid, classifier/fd) that keeps checkpoints/best.pt
    best_mode: Direction = Direction.min  # min: a lower eval.best is better; max: a higher one
    inception_weights: str | None = None  # pt_inception-2015-12-05 weights file; else torch's hub cache
    cache_dir: str = "~/.cache/gan-cli"  # real-set features and trained classifiers
    batch_size: int = 250  # images per forward pass of G and the metric networks
    classifier_epochs: int = 12  # epochs of the classifier metric's small CNN on the real set
    # parzen: kernel widths to choose from on the validation points (images: pixels in [0, 1]; 2-D
    # points: raw coordinates); [] = log-spaced, 0.1 to 1 for images (the reference's grid), for 2-D
    # points 0.001 to 1 times the set's scale (ring8 1, grid25 4)
    parzen_sigmas: list[float] = field(default_factory=list)
    parzen_valid: int = 1000  # parzen: real points that choose sigma ...
    parzen_test: int = 2000  # ... and held-out real points that are scored (the rest: the reference)
    seed: int = 0  # seed of the generated and real samples an evaluation draws


@dataclass
class Config:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    resume: str | None = None  # a run directory or a checkpoint file
    # fine-tuning: a run directory, checkpoint or generator.pt whose weights start G (and D where it
    # has them); the optimizers, step and data start fresh
    init_from: str | None = None


GROUPS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
    "eval": EvalConfig,
}


def register() -> None:
    """Make the schema known to Hydra (idempotent)."""
    ConfigStore.instance().store(name="base_config", node=Config)


@functools.cache
def schema_tree() -> DictConfig:
    """The whole schema with every group filled by its defaults, for looking up valid keys (built
    once: 0.2 s; read it, never change it)."""
    groups = {name: cls() for name, cls in GROUPS.items()}
    groups["data"] = DataConfig(a=DomainConfig(), b=DomainConfig())
    return OmegaConf.structured(Config(**groups))


def valid_keys(path: str) -> list[str] | None:
    """Keys the schema allows directly under a dotted path; None where the path is no section."""
    node = OmegaConf.select(schema_tree(), path) if path else schema_tree()
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else None


class ConfigError(UserError, ValueError):
    """A config value is out of range or inconsistent; the message names the key."""


# the smallest value each number may take (a value below it fails before any work, naming the key)
MINIMUM: dict[str, float] = {
    **dict.fromkeys(
        ("steps", "batch_size", "log_every", "sample_every", "ckpt_every", "n_samples", "skip_limit"), 1
    ),
    **dict.fromkeys(
        ("keep_ckpts", "ema_bn_batches", "instance_noise", "instance_noise_steps", "threads", "pool_size"), 0
    ),
    "health.diversity_samples": 2,
    "health.warmup": 0,
}
MINIMUM = {f"trainer.{k}": v for k, v in MINIMUM.items()} | {
    "data.size": 1,
    "data.subset": 0,
    "data.num_workers": 0,
    "data.preload_max_mb": 0,
    "data.std": 0,
    "model.g_channels": 1,
    "model.base_size": 0,
    "model.d_channels": 1,
    "model.embed_dim": 1,
    "model.res_blocks": 0,
    "model.d_layers": 1,
    "model.w_dim": 1,
    "model.mapping_layers": 1,
    "model.channel_base": 1,
    "model.channel_max": 1,
    "model.mbstd_group": 1,
    "loss.r1_interval": 1,
    "loss.pl_weight": 0,
    "loss.pl_interval": 1,
    "loss.pl_decay": 0,
    "loss.pl_batch_shrink": 1,
    "loss.style_mixing": 0,
    "trainer.ema_kimg": 0,
    "trainer.ema_rampup": 0,
    "loss.cycle_weight": 0,
    "loss.identity_weight": 0,
    "loss.semantic_weight": 0,
    "loss.mmd_weight": 0,
    "loss.gp_weight": 0,
    "loss.r1_gamma": 0,
    "optim.weight_decay": 0,
    "optim.schedule_steps": 0,
    "optim.warmup_steps": 0,
    "eval.every": 0,
    "eval.n_samples": 2,
    "eval.real_samples": 2,
    "eval.batch_size": 1,
    "eval.classifier_epochs": 1,
}


def _get(cfg: Config, key: str) -> object:
    node: object = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_config(cfg: Config) -> None:
    """Cross-field and range checks the types alone cannot express (all problems at once)."""
    t, d, m = cfg.trainer, cfg.data, cfg.model
    problems = []
    for key, low in MINIMUM.items():
        value = _get(cfg, key)
        if value is not None and value < low:  # type: ignore[operator]
            problems.append(f"{key} must be >= {low:g}, got {value}")
    if t.batch_size < 2:
        problems.append("trainer.batch_size must be >= 2 (batch norm needs two samples)")
    if not 0.0 < t.rollback_lr_factor <= 1.0:
        problems.append(f"trainer.rollback_lr_factor must be in (0, 1], got {t.rollback_lr_factor}")
    if cfg.loss.clip <= 0:
        problems.append(f"loss.clip must be > 0, got {cfg.loss.clip}")
    for key in ("g_hidden", "d_hidden"):
        if any(w < 1 for w in getattr(m, key)):
            problems.append(f"model.{key} must list widths >= 1, got {list(getattr(m, key))}")
    if cfg.eval.every and not cfg.eval.metrics:
        problems.append(
            f"eval.every={cfg.eval.every} evaluates nothing: name the metrics, e.g. eval.metrics=[classifier]"
        )
    problems += parzen_problems(cfg.eval)
    if not 0.0 <= cfg.optim.decay_start < 1.0:
        problems.append(f"optim.decay_start must be a fraction in [0, 1), got {cfg.optim.decay_start}")
    if not 0.0 <= t.ema_decay < 1.0:
        problems.append(f"trainer.ema_decay must be in [0, 1), got {t.ema_decay}")
    if cfg.loss.n_critic < 1:
        problems.append(f"loss.n_critic must be >= 1, got {cfg.loss.n_critic}")
    if cfg.loss.g_steps < 1:
        problems.append(f"loss.g_steps must be >= 1, got {cfg.loss.g_steps}")
    if cfg.loss.g_steps_until < 0:
        problems.append(
            f"loss.g_steps_until must be >= 0 (0: loss.g_steps to the end), got {cfg.loss.g_steps_until}"
        )
    for key in ("lr_g", "lr_d"):
        if getattr(cfg.optim, key) <= 0:
            problems.append(f"optim.{key} must be > 0, got {getattr(cfg.optim, key)}")
    betas = list(cfg.optim.betas)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        problems.append(f"optim.betas must be two numbers in [0, 1), got {betas}")
    if d.dim:
        if d.channels or d.image_size:
            problems.append("data.dim is set (vector data): data.channels and data.image_size must be 0")
    elif d.channels not in (1, 3) or d.image_size < 1:
        problems.append(
            f"images need data.channels 1 or 3 and data.image_size >= 1, got {d.channels} and {d.image_size}"
        )
    if d.name in (DataName.stacked_mnist5k, DataName.stacked_mnist) and d.channels != 3:
        problems.append(
            f"data={d.name.value} stacks three digits as the R, G, B channels: data.channels must be 3, "
            f"got {d.channels}"
        )
    problems += _translation_problems(cfg)
    problems += _stylegan2_problems(cfg)
    if m.z_dim < 1:
        problems.append(f"model.z_dim must be >= 1, got {m.z_dim}")
    if m.z_components < 0:
        problems.append(f"model.z_components must be >= 0 (0 = standard normal prior), got {m.z_components}")
    if m.z_component_std <= 0:
        problems.append(f"model.z_component_std must be > 0, got {m.z_component_std}")
    if m.z_truncation <= 0:
        problems.append(
            f"model.z_truncation must be > 0 (the bound of z_prior=truncated), got {m.z_truncation}"
        )
    problems += _minibatch_discrimination_problems(cfg)
    if m.g_norm == Norm.virtual_batch and m.name != ModelName.mlp:
        problems.append(
            f"model.g_norm=virtual_batch is implemented for model=mlp's generator, not model={m.name.value}; "
            "valid here: auto, batch, layer, instance, none"
        )
    if m.d_norm == Norm.virtual_batch:
        problems.append(
            "model.d_norm=virtual_batch: virtual batch norm is a generator's normalisation (D's output "
            "must not depend on a reference batch); valid: auto, batch, layer, instance, none"
        )
    if m.vbn_ref_size < 2:
        problems.append(
            f"model.vbn_ref_size must be >= 2 (a reference batch has statistics), got {m.vbn_ref_size}"
        )
    if m.pack < 1 or t.batch_size % m.pack:
        problems.append(f"model.pack={m.pack} must be >= 1 and divide trainer.batch_size={t.batch_size}")
    bad_aug = [a for a in t.diffaugment if a not in ("color", "translation", "cutout")]
    if bad_aug:
        problems.append(f"trainer.diffaugment: unknown {bad_aug}; valid: color, translation, cutout")
    if t.diffaugment and d.dim:
        problems.append("trainer.diffaugment is for images, not vector data")
    problems += _ada_problems(cfg)
    if m.d_maxout < 0 or (m.d_maxout and m.name != ModelName.mlp):
        problems.append(f"model.d_maxout is for the mlp discriminator and must be >= 0, got {m.d_maxout}")
    if m.mbstd and m.name == ModelName.cgan:
        problems.append("model.mbstd is available for the mlp and dcgan discriminators")
    if m.pack > 1 and m.name == ModelName.cgan:
        problems.append("model.pack > 1 is for unconditional models (a packed group has no single label)")
    lc = cfg.loss
    if not 0.0 < lc.top_k <= 1.0 or lc.top_k_steps < 0:
        problems.append(
            f"loss.top_k must be in (0, 1] and loss.top_k_steps >= 0, got {lc.top_k}, {lc.top_k_steps}"
        )
    if lc.top_k < 1.0 and lc.feature_matching:
        problems.append(
            "loss.top_k ranks samples by D's score: it does not combine with loss.feature_matching"
        )
    if lc.unroll_steps < 0:
        problems.append(f"loss.unroll_steps must be >= 0, got {lc.unroll_steps}")
    if lc.unroll_steps:
        if cfg.optim.name != OptimName.adam:
            problems.append("loss.unroll_steps needs optim.name=adam (the surrogate steps are Adam steps)")
        if lc.name in (LossName.wgan, LossName.wgan_gp):
            problems.append(
                "loss.unroll_steps applies to the minimax, nonsaturating, hinge and lsgan losses "
                "(a critic needs its clipping or penalty in every step)"
            )
        if lc.feature_matching:
            problems.append(
                "loss.unroll_steps and loss.feature_matching are two different G losses: pick one"
            )
    if any(b <= 0 for b in lc.mmd_bandwidths):
        problems.append(f"loss.mmd_bandwidths must all be > 0 (data units), got {list(lc.mmd_bandwidths)}")
    if lc.mmd_weight > 0 and not lc.mmd_bandwidths and cfg.data.std <= 0:
        problems.append(
            f"loss.mmd_weight={lc.mmd_weight} needs kernel bandwidths: data={cfg.data.name.value} has no "
            "data.std to derive them from; set loss.mmd_bandwidths=[...] in the data's units"
        )
    if cfg.loss.label_smoothing and cfg.loss.name not in (LossName.minimax, LossName.nonsaturating):
        problems.append("loss.label_smoothing applies to the minimax and nonsaturating losses only")
    if not 0.0 <= cfg.loss.label_smoothing < 0.5:
        problems.append(f"loss.label_smoothing must be in [0, 0.5), got {cfg.loss.label_smoothing}")
    if problems:
        raise ConfigError("Invalid config:\n  - " + "\n  - ".join(problems))


def parzen_problems(ev: EvalConfig) -> list[str]:
    """The parzen metric's settings; gan-eval checks them too (it has no whole Config)."""
    problems = []
    if any(s <= 0 for s in ev.parzen_sigmas):
        problems.append(
            f"eval.parzen_sigmas must list kernel widths > 0 ([] = default), got {list(ev.parzen_sigmas)}"
        )
    for key, low in (("parzen_valid", 1), ("parzen_test", 2)):
        if getattr(ev, key) < low:
            problems.append(f"eval.{key} must be >= {low}, got {getattr(ev, key)}")
    return problems


def _minibatch_discrimination_problems(cfg: Config) -> list[str]:
    """model.minibatch_discrimination's sizes, and the settings it cannot work with."""
    m = cfg.model
    problems = [
        f"model.{key} must be >= 1, got {getattr(m, key)}"
        for key in ("mbd_kernels", "mbd_dim")
        if getattr(m, key) < 1
    ]
    if not m.minibatch_discrimination or m.name == ModelName.cyclegan:
        return problems
    if cfg.loss.name == LossName.wgan_gp:
        problems.append(
            "model.minibatch_discrimination makes D's score of a sample depend on the other samples of "
            "its batch, and loss=wgan_gp's penalty bounds D's gradient one sample at a time (Gulrajani "
            "et al. 2017, sec. 4, on batch norm): use loss=hinge or nonsaturating with minibatch "
            "discrimination, or keep wgan_gp with the milder model.mbstd=true (as Karras et al. 2018)"
        )
    if (inputs := cfg.trainer.batch_size // m.pack) < 2:
        problems.append(
            "model.minibatch_discrimination compares each of D's inputs with the others of its batch, "
            f"but with model.pack={m.pack} D sees trainer.batch_size/pack = {inputs} input per batch: "
            "raise trainer.batch_size or lower model.pack"
        )
    return problems


def _ada_problems(cfg: Config) -> list[str]:
    """trainer.ada's ranges, and what it does not combine with (images only, one augmentation)."""
    t = cfg.trainer
    if not t.ada:
        return []
    from gan_cli.ada import pipe_transforms  # imports torch: only for runs that use ADA

    problems = []
    try:
        pipe_transforms(list(t.ada_pipe))
    except ValueError as e:
        problems.append(f"trainer.ada_pipe: {e}")
    if cfg.data.dim:
        problems.append(f"trainer.ada augments images, not vector data (data={cfg.data.name.value})")
    if t.diffaugment:
        problems.append(
            "trainer.ada and trainer.diffaugment both augment D's inputs: choose one "
            "(trainer.diffaugment=[] or trainer.ada=false)"
        )
    if cfg.loss.name in (LossName.wgan, LossName.wgan_gp):
        problems.append(
            f"trainer.ada steers p by the sign of D's logits on real images, which a critic "
            f"(loss={cfg.loss.name.value}) does not give a meaning: use loss=nonsaturating, minimax, hinge "
            "or lsgan"
        )
    if not 0.0 <= t.ada_target < 1.0:
        problems.append(f"trainer.ada_target must be in [0, 1), got {t.ada_target}")
    if t.ada_interval < 1:
        problems.append(f"trainer.ada_interval must be >= 1, got {t.ada_interval}")
    if t.ada_kimg <= 0:
        problems.append(f"trainer.ada_kimg must be > 0, got {t.ada_kimg}")
    if not 0.0 <= t.ada_p <= 1.0:
        problems.append(f"trainer.ada_p must be in [0, 1], got {t.ada_p}")
    return problems


def _stylegan2_problems(cfg: Config) -> list[str]:
    """model=stylegan2's image sizes, labels and the GAN-game options its game does not have; and
    model.cond's choices per model."""
    d, m, lc = cfg.data, cfg.model, cfg.loss
    if m.name != ModelName.stylegan2:
        if m.cond == CondMode.none and m.name == ModelName.cgan:
            return ["model.cond=none: model=cgan is conditional; use model=dcgan for an unconditional model"]
        return []
    problems = []
    if d.dim:
        problems.append(
            f"model=stylegan2 generates images, but data={d.name.value} holds 2-D points; use model=mlp"
        )
    elif d.image_size < 8 or d.image_size & (d.image_size - 1):
        problems.append(
            f"model=stylegan2 needs a data.image_size that is a power of two >= 8 (e.g. 32), "
            f"got {d.image_size}"
        )
    if m.cond == CondMode.concat:
        problems.append(
            "model.cond=concat: model=stylegan2 is conditioned by projection (labels into the mapping "
            "network and D's projection) or not at all: model.cond=projection|none"
        )
    labelled = d.num_classes >= 2 or d.labels == Labels.subfolders
    if m.cond == CondMode.projection and not labelled:
        problems.append(
            f"model.cond=projection trains a class-conditional StyleGAN2, but data={d.name.value} has no "
            "labels (data.num_classes < 2); set model.cond=none"
        )
    if lc.n_critic != 1:
        problems.append(f"loss.n_critic={lc.n_critic}: the StyleGAN2 game takes one D step per G step")
    if lc.g_steps != 1:
        problems.append(f"loss.g_steps={lc.g_steps}: the StyleGAN2 game takes one G step per D step")
    for key, bad in (
        ("model.pack", m.pack > 1),
        ("model.minibatch_discrimination", m.minibatch_discrimination),
        ("loss.unroll_steps", lc.unroll_steps > 0),
        ("loss.feature_matching", lc.feature_matching),
        ("loss.clip", lc.name == LossName.wgan),
        ("loss.gp_weight", lc.name == LossName.wgan_gp),
        ("loss.label_smoothing", lc.label_smoothing > 0),
        ("trainer.compile", cfg.trainer.compile),
    ):
        if bad:
            problems.append(
                f"{key}: the StyleGAN2 game does not apply it (its stabilisers are lazy R1, path length, "
                "style mixing, the minibatch-std layer and ADA; R1's second derivative does not go through "
                "torch.compile); loss=wgan/wgan_gp are not available either"
            )
    if cfg.trainer.precision == Precision.fp16:
        problems.append(
            "trainer.precision=fp16: the StyleGAN2 networks have no fp16 overflow guards (the reference's "
            "clamping); use trainer.precision=bf16 (autocast) or fp32"
        )
    return problems


def _translation_problems(cfg: Config) -> list[str]:
    """model=cyclegan needs data=unpaired (two image domains), and only it takes one."""
    d, m = cfg.data, cfg.model
    unpaired = d.name == DataName.unpaired
    if m.name != ModelName.cyclegan:
        if unpaired:
            return [
                "data=unpaired holds two domains for translation: it needs model=cyclegan, "
                f"not {m.name.value}"
            ]
        return []
    if not unpaired or d.a is None or d.b is None:
        return [
            f"model=cyclegan translates between two image sets: choose data=digits2mnist or data=unpaired "
            f"with data.a and data.b (got data={d.name.value})"
        ]
    problems = []
    if cfg.loss.name in (LossName.wgan, LossName.wgan_gp):
        problems.append(
            f"model=cyclegan takes loss=lsgan|nonsaturating|minimax|hinge, not {cfg.loss.name.value} "
            "(a critic needs weight clipping or a gradient penalty, which the CycleGAN game does not apply)"
        )
    for key, dom in (("data.a", d.a), ("data.b", d.b)):
        if dom.name in (DataName.unpaired,) or dom.dim:
            problems.append(f"{key}.name={dom.name.value}: a domain is one image set")
        elif dom.channels not in (1, 3) or dom.image_size != d.image_size:
            problems.append(
                f"{key} needs channels 1 or 3 and data.image_size={d.image_size} (got {dom.channels} and "
                f"{dom.image_size}); both domains are read at one size"
            )
    unset = [f"{key}.root" for key, dom in (("data.a", d.a), ("data.b", d.b)) if _needs_root(dom)]
    if unset:
        problems.append(
            f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set: each domain of "
            "data=unpaired is read from a folder of images; set " + " ".join(f"{k}=<folder>" for k in unset)
        )
    if d.image_size < 8 or d.image_size % 4:
        problems.append(
            f"model=cyclegan needs a data.image_size that is a multiple of 4 and >= 8, got {d.image_size}"
        )
    if cfg.loss.semantic_weight and d.a.num_classes < 2:
        problems.append(
            f"loss.semantic_weight={cfg.loss.semantic_weight} trains a classifier on domain A's labels, "
            f"but data.a={d.a.name.value} has none (data.a.num_classes={d.a.num_classes}); use a labelled "
            "set as domain A (e.g. data=digits2mnist) or loss.semantic_weight=0"
        )
    if cfg.loss.identity_weight and d.a.channels != d.b.channels:
        problems.append(
            f"loss.identity_weight={cfg.loss.identity_weight} compares G_AB(b) with b, which needs both "
            f"domains to have the same channels (data.a.channels={d.a.channels}, "
            f"data.b.channels={d.b.channels}); set "
            "loss.identity_weight=0 or convert one domain (data.b.channels=...)"
        )
    return problems


def _needs_root(dom: DomainConfig) -> bool:
    """An image-folder domain without the folder it reads."""
    return dom.name == DataName.image_folder and not dom.root


def ema_decay_at(decay: float, step: int) -> float:
    """The EMA decay trainer.ema_decay means at (0-based) training step `step`: warmed up as
    TensorFlow's ExponentialMovingAverage with num_updates, min(decay, (1 + t) / (10 + t)), so
    that early on the average follows G instead of dragging its random initial weights along."""
    return min(decay, (1 + step) / (10 + step))


def ema_decay_first_step(decay: float) -> int:
    """The first step at which the warm-up (ema_decay_at) lets `decay` take effect (0 for a decay
    outside (0, 1), which check_config refuses or which turns the EMA off)."""
    if not 0 < decay < 1:
        return 0
    step = max(0, math.floor((10 * decay - 1) / (1 - decay)))
    while ema_decay_at(decay, step) < decay:
        step += 1
    return step


def ema_warmup_covers_run(cfg: Config) -> bool:
    """True when trainer.ema_decay > 0 never takes effect: the GAN game's warm-up stays below it
    through the last of trainer.steps updates (StyleGAN2 with trainer.ema_kimg and
    CycleGAN have other rules)."""
    t, m = cfg.trainer, cfg.model
    if t.ema_decay <= 0 or m.name == ModelName.cyclegan or (m.name == ModelName.stylegan2 and t.ema_kimg > 0):
        return False
    return ema_decay_at(t.ema_decay, max(0, t.steps - 1)) < t.ema_decay


def inert_settings(cfg: Config) -> list[str]:
    """Settings changed from their defaults that this run's other choices make do nothing: a
    note for each, printed at the start, so that no choice is silently not in force."""
    defaults = Config(**{name: cls() for name, cls in GROUPS.items()})  # type: ignore[arg-type]
    m, lc, t = cfg.model, cfg.loss, cfg.trainer

    def changed(key: str) -> bool:
        return _get(cfg, key) != _get(defaults, key)

    rules = [
        ("optim.betas", cfg.optim.name != OptimName.adam, f"optim.name={cfg.optim.name.value} (Adam only)"),
        ("loss.clip", lc.name != LossName.wgan, f"loss={lc.name.value} (weight clipping is loss=wgan's)"),
        ("loss.gp_weight", lc.name != LossName.wgan_gp, f"loss={lc.name.value} (the penalty is wgan_gp's)"),
        ("loss.top_k_steps", lc.top_k >= 1.0, "loss.top_k=1 (nothing to anneal)"),
        ("loss.mmd_bandwidths", lc.mmd_weight == 0, "loss.mmd_weight=0 (no MMD term)"),
        ("loss.mmd_weight", m.name == ModelName.stylegan2, "model=stylegan2 (a term of the GAN game's G)"),
        ("model.embed_dim", m.name != ModelName.cgan, f"model={m.name.value} (unconditional)"),
        (
            "model.cond",
            m.name not in (ModelName.cgan, ModelName.stylegan2),
            f"model={m.name.value} (unconditional)",
        ),
        ("model.g_hidden", m.name != ModelName.mlp, f"model={m.name.value} (convolutional)"),
        (
            "model.vbn_ref_size",
            m.g_norm != Norm.virtual_batch,
            f"model.g_norm={m.g_norm.value} (the reference batch is virtual_batch's)",
        ),
        (
            "trainer.ema_bn_batches",
            m.g_norm == Norm.virtual_batch,
            "model.g_norm=virtual_batch (no running statistics to recompute)",
        ),
        ("model.d_hidden", m.name != ModelName.mlp, f"model={m.name.value} (convolutional)"),
        ("model.g_activation", m.name != ModelName.mlp, f"model={m.name.value} (convolutional)"),
        ("model.g_channels", m.name in (ModelName.mlp, ModelName.stylegan2), f"model={m.name.value}"),
        *(
            (
                f"model.{key}",
                m.name not in (ModelName.dcgan, ModelName.cgan),
                f"model={m.name.value} (a dcgan / cgan layout)",
            )
            for key in ("base_size", "g_out_conv")
        ),
        ("model.d_channels", m.name in (ModelName.mlp, ModelName.stylegan2), f"model={m.name.value}"),
        *(
            (f"model.{key}", m.name != ModelName.stylegan2, f"model={m.name.value} (stylegan2's)")
            for key in ("w_dim", "mapping_layers", "channel_base", "channel_max", "mbstd_group", "g_output")
        ),
        *(
            (f"loss.{key}", m.name != ModelName.stylegan2, f"model={m.name.value} (the StyleGAN2 game's)")
            for key in (
                "r1_interval",
                "pl_weight",
                "pl_interval",
                "pl_decay",
                "pl_batch_shrink",
                "style_mixing",
            )
        ),
        *(
            (f"trainer.{key}", m.name != ModelName.stylegan2, f"model={m.name.value} (the StyleGAN2 game's)")
            for key in ("ema_kimg", "ema_rampup")
        ),
        (
            "trainer.ema_decay",
            m.name == ModelName.stylegan2 and t.ema_kimg > 0,
            "trainer.ema_kimg > 0 (the EMA's half-life in images sets its decay)",
        ),
        *(
            (
                key,
                m.name == ModelName.stylegan2,
                "model=stylegan2 (no batch norm; its D has its own minibatch-std)",
            )
            for key in ("model.g_norm", "model.d_norm", "model.mbstd", "trainer.ema_bn_batches")
        ),
        (
            "model.z_truncation",
            m.z_prior != ZPrior.truncated,
            f"model.z_prior={m.z_prior.value} (the bound is z_prior=truncated's)",
        ),
        ("model.mbd_kernels", not m.minibatch_discrimination, "model.minibatch_discrimination=false"),
        ("model.mbd_dim", not m.minibatch_discrimination, "model.minibatch_discrimination=false"),
        ("data.labels", cfg.data.name != DataName.image_folder, f"data={cfg.data.name.value}"),
        ("data.skip_bad", cfg.data.name != DataName.image_folder, f"data={cfg.data.name.value}"),
        ("trainer.instance_noise_steps", cfg.trainer.instance_noise == 0, "trainer.instance_noise=0"),
        ("loss.g_steps_until", cfg.loss.g_steps == 1, "loss.g_steps=1 (one G update per step throughout)"),
        *(
            (f"trainer.ada_{key}", not t.ada, "trainer.ada=false")
            for key in ("pipe", "target", "interval", "kimg", "p")
        ),
        ("eval.best", cfg.eval.every == 0, "eval.every=0 (no evaluation during training)"),
        ("optim.schedule_steps", cfg.optim.schedule == Schedule.constant, "optim.schedule=constant"),
        ("optim.decay_start", cfg.optim.schedule == Schedule.constant, "optim.schedule=constant"),
        ("model.res_blocks", m.name != ModelName.cyclegan, f"model={m.name.value} (cyclegan's generator)"),
        ("model.d_layers", m.name != ModelName.cyclegan, f"model={m.name.value} (cyclegan's discriminator)"),
        ("loss.cycle_weight", m.name != ModelName.cyclegan, f"model={m.name.value} (no cycle)"),
        ("loss.identity_weight", m.name != ModelName.cyclegan, f"model={m.name.value} (no identity loss)"),
        ("loss.semantic_weight", m.name != ModelName.cyclegan, f"model={m.name.value} (no translation)"),
        ("trainer.pool_size", m.name != ModelName.cyclegan, f"model={m.name.value} (no image pool)"),
        (
            "model.z_dim",
            m.name == ModelName.cyclegan,
            "model=cyclegan (it translates images, no latent code)",
        ),
        ("trainer.ema_decay", m.name == ModelName.cyclegan and t.ema_decay > 0, "model=cyclegan (no EMA)"),
        (
            "trainer.ema_decay",
            ema_warmup_covers_run(cfg),
            f"trainer.steps={t.steps}: the EMA's warm-up, min(decay, (1+t)/(10+t)) at step t, stays "
            f"below it to the last step (it would reach it at step {ema_decay_first_step(t.ema_decay):,})",
        ),
        *(
            (key, m.name == ModelName.cyclegan, "model=cyclegan (a stabiliser of the GAN game)")
            for key in (
                "loss.n_critic",
                "loss.g_steps",
                "loss.g_steps_until",
                "loss.r1_gamma",
                "loss.label_smoothing",
                "loss.feature_matching",
                "loss.top_k",
                "loss.unroll_steps",
                "loss.mmd_weight",
                "model.pack",
                "model.mbstd",
                "model.minibatch_discrimination",
                "model.z_components",
                "model.z_prior",
            )
        ),
    ]
    return [
        f"{key}={_get(cfg, key)!s} has no effect with {why}."
        for key, inert, why in rules
        if inert and changed(key)
    ]

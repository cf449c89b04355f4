"""Train NVlabs' own StyleGAN2 (a local checkout of NVlabs/stylegan2-ada-pytorch: its networks.py and
loss.py, run on the CPU through their reference, non-CUDA code paths) on gan-cli's embedded
MNIST-5k at 32 px with the settings of `gan-train experiment=stylegan2_mnist5k`, and write its
fixed-z grids. It answers one question: does gan-cli's StyleGAN2 behave on a CPU budget as the
reference does with the same settings? (README, "StyleGAN2".)

    python scripts/stylegan2_reference_run.py --ref ~/src/stylegan2-ada-pytorch --steps 600 --out ref

The loop is the reference's training_loop.py reduced to what these settings use: the phases Gmain,
Greg (every 4 steps), Dmain and Dreg (every 16), each with its own z, Adam with the lazy c (lr c,
beta^c), gradients cleaned by nan_to_num, and the EMA of G by half-life (10 kimg, ramp-up 0.05).
Writes OUT_ema_STEP.png and OUT_g_STEP.png (64 fixed z, constant noise) every --every steps and
prints the EMA grid's mean pairwise distance relative to 64 real images.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
from pathlib import Path

import torch
import torchvision.utils as vutils

from gan_cli.data.embedded import mnist5k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", type=Path, required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--out", default="stylegan2_ref", help="prefix of the grid files")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.ref / "training" / "networks.py").is_file():
        sys.exit(f"--ref {args.ref}: no training/networks.py there; pass a stylegan2-ada-pytorch checkout")
    sys.path.insert(0, str(args.ref))
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # dnnlib imports it, unused here
    from training import networks  # noqa: PLC0415 (the reference, found through --ref)
    from training.loss import StyleGAN2Loss  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = types.SimpleNamespace(channels=1, image_size=32)
    x = mnist5k(data).x.float() / 127.5 - 1  # (5000, 1, 32, 32) in [-1, 1], as gan-cli feeds D
    z_dim, batch = 128, 32
    sizes = dict(channel_base=1024, channel_max=64)
    G = networks.Generator(z_dim, 0, 128, 32, 1, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=sizes)
    D = networks.Discriminator(0, 32, 1, **sizes, epilogue_kwargs=dict(mbstd_group_size=4))
    G_ema = copy.deepcopy(G).eval()
    loss = StyleGAN2Loss(
        "cpu", G.mapping, G.synthesis, D, r1_gamma=0.0064, pl_weight=2, style_mixing_prob=0.9
    )

    def adam(module: torch.nn.Module, interval: int) -> torch.optim.Adam:
        c = interval / (interval + 1)
        return torch.optim.Adam(module.parameters(), lr=0.0025 * c, betas=(0.0, 0.99**c), eps=1e-8)

    opt_g, opt_d = adam(G, 4), adam(D, 16)
    phases = [("Gmain", G, opt_g, 1), ("Greg", G, opt_g, 4), ("Dmain", D, opt_d, 1), ("Dreg", D, opt_d, 16)]
    fixed_z = torch.randn(64, z_dim, generator=torch.Generator().manual_seed(1))
    no_c = torch.zeros(batch, 0)
    real_spread = torch.pdist(x[:64].flatten(1)).mean()
    start = time.time()
    for step in range(args.steps):
        real = x[torch.randint(len(x), (batch,))]
        for name, module, opt, interval in phases:
            if step % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn(batch, z_dim)
            loss.accumulate_gradients(name, real, no_c, z, no_c, sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            half_life = min(10_000, (step + 1) * batch * 0.05)
            beta = 0.5 ** (batch / half_life)
            for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                b_ema.copy_(b)
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            c = torch.zeros(64, 0)
            with torch.no_grad():
                ema_img = G_ema(fixed_z, c, noise_mode="const")
                g_img = G(fixed_z, c, noise_mode="const")
            spread = float(torch.pdist(ema_img.flatten(1)).mean() / real_spread)
            print(f"step {step + 1}  {time.time() - start:.0f} s  EMA diversity {spread:.3f}", flush=True)
            for tag, img in (("ema", ema_img), ("g", g_img)):
                path = f"{args.out}_{tag}_{step + 1}.png"
                vutils.save_image(img, path, nrow=8, normalize=True, value_range=(-1, 1))


if __name__ == "__main__":
    main()

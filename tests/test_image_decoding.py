"""Image files decode to the pixels a standard viewer shows, or are named as unreadable at start-up;
folders are read as a file browser shows them. Every file here is written by the test itself."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, TiffImagePlugin

import gan_cli.data.common as common
import gan_cli.data.files as files
from gan_cli.data import DataError, load_dataset, make_batches
from gan_cli.data.common import as_displayed
from gan_cli.data.files import decode_image_file, read_image_file, scan_images
from tests.conftest import compose_config


def data_config(*overrides: str):
    return compose_config(*overrides, tiny=False).data


def folder_config(root: Path, *overrides: str):
    return data_config("data=image_folder", f"data.root={root}", "data.num_workers=0", *overrides)


def pixels(path: Path) -> np.ndarray:
    """What gan-cli decodes for a file: uint8 (H, W) or (H, W, 3)."""
    return np.asarray(decode_image_file(path))


def write_png16(path: Path, samples: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG (Pillow cannot write grey+alpha or RGB at 16 bits): uint16 (H, W, C) samples;
    color_type 2 = RGB, 4 = grey + alpha."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in samples.reshape(h, -1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def icc_profile(space: bytes, tags: dict[bytes, tuple[float, ...]]) -> bytes:
    """A minimal ICC v2 display profile for `space` (b"RGB " or b"GRAY"): tag -> XYZ triple or (gamma,)."""

    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def tag(v: tuple[float, ...]) -> bytes:
        if len(v) == 3:
            return b"XYZ " + bytes(4) + b"".join(s15(c) for c in v)
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(v[0] * 256)) + bytes(2)

    blobs = [(sig, tag(v)) for sig, v in tags.items()]
    start = 128 + 4 + 12 * len(blobs)
    table, body = b"", b""
    for sig, blob in blobs:
        table += sig + struct.pack(">II", start + len(body), len(blob))
        body += blob + bytes(-len(blob) % 4)
    head = struct.pack(
        ">I4sI4s4s4s12s4s",
        start + len(body),
        bytes(4),
        0x02100000,
        b"mntr",
        space,
        b"XYZ ",
        bytes(12),
        b"acsp",
    )
    head += bytes(68 - len(head)) + s15(0.9642) + s15(1.0) + s15(0.8249)  # the D50 illuminant
    return head + bytes(128 - len(head)) + struct.pack(">I", len(blobs)) + table + body


# sRGB's primaries adapted to D50, as in the sRGB ICC profile
RED, GREEN, BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
WHITE = (0.9642, 1.0, 0.8249)


def srgb_of_linear(v: float) -> int:
    return round(255 * (12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055))


# ------------------------------------------------------------------------------- high bit depths


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile((np.arange(256) * 257).astype(np.uint16), (256, 1))  # 0..65535, left to right
    for i in range(4):
        Image.fromarray(ramp).save(tmp_path / f"ramp{i}.png")
    with Image.open(tmp_path / "ramp0.png") as img:
        assert img.mode == "I;16"
    data = load_dataset(folder_config(tmp_path, "data.image_size=256", "data.channels=1"))
    assert data.x.shape == (4, 1, 256, 256)
    assert torch.equal(data.x[0, 0, 0], torch.arange(256, dtype=torch.uint8))  # was 93.75 % 255
    assert (data.x == 255).float().mean().item() == pytest.approx(1 / 256)


def test_16bit_grey_rounds_as_a_viewer(tmp_path):
    v = np.random.default_rng(0).integers(0, 65536, size=(16, 16), dtype=np.uint16)
    v[0, :4] = [0, 128, 129, 65535]
    Image.fromarray(v).save(tmp_path / "noise.png")
    expected = np.round(v / 257).astype(np.uint8)
    assert np.array_equal(pixels(tmp_path / "noise.png"), expected)
    assert expected[0, :4].tolist() == [0, 0, 1, 255]
    rgb = read_image_file(tmp_path / "noise.png", 3, 16)
    assert torch.equal(rgb[1], torch.from_numpy(expected)) and torch.equal(rgb[0], rgb[2])


def test_16bit_big_endian_tiff_and_mode_i(tmp_path):
    v = np.tile((np.arange(16) * 4369).astype(np.uint16), (16, 1))  # 0..65535 in 16 steps
    Image.fromarray(v.astype(">u2")).save(tmp_path / "big.tif")
    with Image.open(tmp_path / "big.tif") as img:
        assert img.mode == "I;16B"
    assert np.array_equal(pixels(tmp_path / "big.tif"), np.round(v / 257).astype(np.uint8))
    # older Pillows return 16-bit PNGs as mode "I" (32-bit): read on the same 0..65535 scale
    as_i = Image.fromarray(v.astype(np.int32))
    assert as_i.mode == "I"
    assert np.array_equal(np.asarray(as_displayed(as_i)), np.round(v / 257).astype(np.uint8))


def test_16bit_grey_colour_key_is_transparent(tmp_path):
    v = np.full((4, 4), 1000, dtype=np.uint16)
    v[:, 2:] = 30000
    Image.fromarray(v).save(tmp_path / "key.png", transparency=30000)
    shown = pixels(tmp_path / "key.png")
    assert np.all(shown[:, :2] == 4) and np.all(shown[:, 2:] == 255)  # 1000 / 257 = 3.9; the key: white


def test_16bit_grey_alpha_png(tmp_path):
    grey = np.tile((np.arange(8) * 9362).astype(np.uint16), (8, 1))
    alpha = np.full((8, 8), 65535, dtype=np.uint16)
    alpha[4:] = 0
    write_png16(tmp_path / "la16.png", np.stack([grey, alpha], -1), color_type=4)
    shown = pixels(tmp_path / "la16.png").astype(int)
    want = np.round(grey / 257)
    assert np.abs(shown[:4, :, 0] - want[:4]).max() <= 1  # Pillow keeps the high byte: within 1
    assert np.all(shown[4:] == 255)


def test_48bit_rgb_png(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, size=(8, 8, 3), dtype=np.uint16)
    write_png16(tmp_path / "rgb48.png", rgb, color_type=2)
    shown = pixels(tmp_path / "rgb48.png").astype(int)
    assert shown.shape == (8, 8, 3) and np.abs(shown - np.round(rgb / 257)).max() <= 1


def test_float_tiff_is_named_and_skipped(tmp_path, capsys):
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "depth.tif")
    Image.new("L", (8, 8), 77).save(tmp_path / "plain.png")
    with pytest.raises(DataError, match=r"depth\.tif \(ValueError: 32-bit floating-point"):
        load_dataset(folder_config(tmp_path, "data.image_size=8"))
    data = load_dataset(folder_config(tmp_path, "data.image_size=8", "data.skip_bad=true", "data.channels=1"))
    assert data.x.shape == (1, 1, 8, 8) and data.x.unique().tolist() == [77]
    assert "skipping 1 unreadable of 2 files" in capsys.readouterr().out


# ------------------------------------------------------------------------------- damaged files


def write_noise_jpeg(path: Path, seed: int = 0) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    return path.read_bytes()


def test_truncated_jpeg_is_found_at_scan_time(tmp_path, capsys):
    for i in range(8):
        write_noise_jpeg(tmp_path / f"ok{i}.jpg", seed=i)
    whole = (tmp_path / "ok0.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(whole[: len(whole) // 2])
    with Image.open(tmp_path / "half.jpg") as img:
        img.verify()  # what the scan used to rely on: it passes a truncated JPEG
    with pytest.raises(DataError) as err:
        load_dataset(folder_config(tmp_path, "data.image_size=16"))
    assert "half.jpg" in str(err.value) and "truncated" in str(err.value) and "1 of 9 files" in str(err.value)
    cfg = folder_config(tmp_path, "data.image_size=16", "data.skip_bad=true", "data.channels=3")
    batches, _ = make_batches(cfg, batch_size=8, seed=0, device=torch.device("cpu"))
    for _ in range(3):
        x, _ = batches.next()  # used to stop with "1 unreadable image(s) in a batch"
        assert x.shape == (8, 3, 16, 16)
    assert "skipping 1 unreadable of 9 files" in capsys.readouterr().out


def test_truncated_png_is_found_through_the_streaming_path(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(64, 64), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    whole = (tmp_path / "0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    assert "truncated" in files.check_image_file(tmp_path / "cut.png")
    cfg = folder_config(
        tmp_path, "data.image_size=16", "data.skip_bad=true", "data.preload_max_mb=0", "data.channels=1"
    )
    batches, _ = make_batches(cfg, batch_size=4, seed=0, device=torch.device("cpu"))
    for _ in range(3):
        x, _ = batches.next()
        assert x.shape == (4, 1, 16, 16)


def test_scan_verdicts_are_kept_for_the_next_start(tmp_path, monkeypatch):
    for i in range(6):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    checked: list[str] = []
    real = files.check_image_file
    monkeypatch.setattr(files, "check_image_file", lambda p: checked.append(p.name) or real(p))
    cfg = folder_config(tmp_path, "data.image_size=8", "data.skip_bad=true")
    first = load_dataset(cfg)
    assert sorted(checked) == sorted([f"{i}.png" for i in range(6)] + ["bad.png"])
    assert (tmp_path / ".gan_cli_cache" / "scan.pt").is_file()
    checked.clear()
    assert torch.equal(load_dataset(cfg).x, first.x) and checked == []  # nothing decoded twice
    with pytest.raises(DataError, match="bad.png"):  # the cached verdict still names the file
        load_dataset(folder_config(tmp_path, "data.image_size=8"))
    Image.new("RGB", (8, 8), (200, 0, 0)).save(tmp_path / "3.png")  # changed: checked again
    os.utime(tmp_path / "3.png", ns=(1, 1))
    assert load_dataset(cfg).x[3, :, 0, 0].tolist() == [200, 0, 0] and checked == ["3.png"]


def test_scan_without_cache_writes_nothing(tmp_path):
    Image.new("L", (8, 8), 9).save(tmp_path / "a.png")
    load_dataset(folder_config(tmp_path, "data.image_size=8", "data.cache=false"))
    assert not (tmp_path / ".gan_cli_cache").exists()


def test_scan_in_worker_processes(tmp_path):
    for i in range(300):
        Image.new("L", (4, 4), i % 256).save(tmp_path / f"{i:03d}.png")
    (tmp_path / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    reasons = files.check_image_files(scan_images(tmp_path), num_workers=2)
    assert reasons[:300] == [""] * 300 and reasons[300].startswith("UnidentifiedImageError")


# ------------------------------------------------------------------------------- orientation, colour


@pytest.mark.parametrize(
    "orientation,shown",
    [
        (1, lambda a: a),
        (2, np.fliplr),
        (3, lambda a: np.rot90(a, 2)),
        (4, np.flipud),
        (5, lambda a: a.T),
        (6, lambda a: np.rot90(a, -1)),  # "rotate 90 degrees clockwise to view"
        (7, lambda a: np.rot90(a, 2).T),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, shown):
    stored = (np.arange(24).reshape(4, 6) * 10).astype(np.uint8)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)
    assert np.array_equal(pixels(tmp_path / "o.png"), shown(stored))


def test_tiff_orientation_and_damaged_exif(tmp_path):
    stored = (np.arange(24).reshape(4, 6) * 10).astype(np.uint8)
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 8  # "rotate 90 degrees counter-clockwise to view", a tag of the TIFF itself
    for compression in (None, "tiff_lzw"):  # Pillow garbles the uncompressed one when opened by name
        Image.fromarray(stored).save(tmp_path / "o.tif", tiffinfo=tags, compression=compression)
        assert np.array_equal(pixels(tmp_path / "o.tif"), np.rot90(stored, 1))
        assert np.array_equal(read_image_file(tmp_path / "o.tif", 1, 4)[0].numpy(), np.rot90(stored, 1)[1:5])
    for suffix in ("png", "webp", "jpg"):  # viewers show these as stored; Pillow raises SyntaxError
        path = tmp_path / f"damaged.{suffix}"
        exif = b"not an exif block" if suffix != "jpg" else b"Exif\0\0MM\0*\0\0\0\x08\xff\xff"
        Image.fromarray(stored).save(path, exif=exif, **({"lossless": True} if suffix == "webp" else {}))
        assert files.check_image_file(path) == ""
        assert pixels(path).shape[:2] == (4, 6)


def test_exif_rotated_jpeg(tmp_path):
    stored = np.zeros((32, 64), dtype=np.uint8)
    stored[:, 32:] = 255  # left half black, right half white
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # a phone held upright: shown turned 90 degrees clockwise
    img.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    shown = pixels(tmp_path / "phone.jpg").astype(int)
    assert shown.shape == (64, 32)
    assert shown[:28].max() <= 3 and shown[36:].min() >= 252  # black on top, white below
    x = read_image_file(tmp_path / "phone.jpg", 1, 16)[0].int()
    assert x[:7].max() <= 3 and x[9:].min() >= 252


def test_icc_profile_is_converted_to_srgb(tmp_path):
    swapped = icc_profile(
        b"RGB ",
        {b"wtpt": WHITE, b"rXYZ": BLUE, b"gXYZ": GREEN, b"bXYZ": RED}
        | {b"rTRC": (2.2,), b"gTRC": (2.2,), b"bTRC": (2.2,)},
    )
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    red.save(tmp_path / "swapped.png", icc_profile=swapped)
    red.save(tmp_path / "swapped.jpg", icc_profile=swapped, quality=100)
    assert np.all(pixels(tmp_path / "swapped.png") == [0, 0, 255])  # its "red" is sRGB's blue
    assert np.abs(pixels(tmp_path / "swapped.jpg").astype(int) - [0, 0, 255]).max() <= 3
    linear_grey = icc_profile(b"GRAY", {b"wtpt": WHITE, b"kTRC": (1.0,)})
    Image.new("L", (8, 8), 128).save(tmp_path / "linear.png", icc_profile=linear_grey)
    expected = srgb_of_linear(128 / 255)
    assert expected == 188 and np.abs(pixels(tmp_path / "linear.png").astype(int) - expected).max() <= 1
    half = np.zeros((8, 8, 4), dtype=np.uint8)
    half[..., 0], half[..., 3] = 255, 255
    half[:, 4:, 3] = 0
    Image.fromarray(half).save(tmp_path / "alpha.png", icc_profile=swapped)
    shown = pixels(tmp_path / "alpha.png")
    assert np.all(shown[:, :4] == [0, 0, 255]) and np.all(shown[:, 4:] == 255)


def test_unusable_icc_profile_is_ignored(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4), (10, 120, 250)).save(tmp_path / "broken.png", icc_profile=b"not a profile" * 20)
    grey_profile = icc_profile(b"GRAY", {b"wtpt": WHITE, b"kTRC": (1.0,)})
    Image.new("RGB", (4, 4), (10, 120, 250)).save(tmp_path / "mismatch.png", icc_profile=grey_profile)
    for name in ("broken.png", "mismatch.png"):
        assert np.all(pixels(tmp_path / name) == [10, 120, 250])
    monkeypatch.setattr(common, "ImageCms", None)  # a Pillow without LittleCMS
    swapped = icc_profile(b"RGB ", {b"wtpt": WHITE, b"rXYZ": BLUE, b"gXYZ": GREEN, b"bXYZ": RED})
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "uncorrected.png", icc_profile=swapped)
    assert np.all(pixels(tmp_path / "uncorrected.png") == [255, 0, 0])


def test_cmyk_and_lab(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "red.jpg", quality=100)
    assert np.abs(pixels(tmp_path / "red.jpg").astype(int) - [255, 0, 0]).max() <= 2
    Image.new("LAB", (4, 4), (128, 128, 128)).save(tmp_path / "lab.tif")  # L* = 50.2, a* = b* = 0
    assert np.all(pixels(tmp_path / "lab.tif") == 119)  # the sRGB grey of L* 50


# ------------------------------------------------------------------------------- transparency, palettes


def test_transparency_is_composited_on_white(tmp_path):
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 10, 20] + [0, 0, 0] * 254)
    pal.save(tmp_path / "pal.png")
    assert np.all(pixels(tmp_path / "pal.png") == [200, 10, 20])
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "pal_clear.png", transparency=0)
    pal.save(tmp_path / "pal_clear.gif", transparency=0)
    for name in ("pal_clear.png", "pal_clear.gif"):
        shown = pixels(tmp_path / name)
        assert shown[0, 0].tolist() == [255, 255, 255] and shown[0, 1].tolist() == [200, 10, 20]
    Image.fromarray(np.array([[0, 90]], dtype=np.uint8)).save(tmp_path / "key_l.png", transparency=90)
    assert pixels(tmp_path / "key_l.png").tolist() == [[0, 255]]
    rgb = np.array([[[0, 0, 0], [10, 20, 30]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "key_rgb.png", transparency=(10, 20, 30))
    assert pixels(tmp_path / "key_rgb.png").tolist() == [[[0, 0, 0], [255, 255, 255]]]
    Image.new("LA", (4, 4), (0, 128)).save(tmp_path / "la.png")
    assert np.all(pixels(tmp_path / "la.png") == 127)  # black at 50 % over white
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert read_image_file(tmp_path / "clear.png", 1, 4).min() == 255
    pa = Image.new("PA", (2, 2), (1, 0))
    pa.putpalette([0, 0, 0, 200, 10, 20] + [0, 0, 0] * 254)
    assert np.all(np.asarray(as_displayed(pa)) == 255)
    premultiplied = Image.new("RGBA", (2, 2), (200, 0, 0, 0)).convert("RGBa")
    assert premultiplied.mode == "RGBa" and np.all(np.asarray(as_displayed(premultiplied)) == 255)


# ------------------------------------------------------------------------------- formats


def test_more_formats_pillow_decodes_are_listed(tmp_path):
    """The reported input: .ppm, .pgm, .tga, JPEG 2000 and QOI files (and .WEBP in capitals) were
    left out of an image folder though Pillow decodes them."""
    colour = (30, 160, 90)
    saved = {"a.ppm": None, "b.PGM": "PPM", "c.pnm": "PPM", "d.tga": None, "e.WEBP": "WEBP", "f.dib": "DIB"}
    saved |= {"g.jp2": None, "h.j2k": None, "i.qoi": None, "j.apng": "PNG"}
    for name, fmt in saved.items():
        mode = "L" if name.lower().endswith("pgm") else "RGB"
        try:
            image = Image.new(mode, (8, 8), colour[1] if mode == "L" else colour)
            image.save(tmp_path / name, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        except (OSError, KeyError, ValueError):  # a Pillow built without this writer
            continue
    Image.new("1", (8, 8), 1).save(tmp_path / "k.PBM", "PPM")
    (tmp_path / "notes.txt").write_text("not an image")
    found = [p.name for p in scan_images(tmp_path)]
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "notes.txt")
    assert sorted(found) == written and "k.PBM" in found and "a.ppm" in found
    for name in found:
        shown = pixels(tmp_path / name).astype(int)
        expected = 255 if name == "k.PBM" else (colour[1] if shown.ndim == 2 else colour)
        assert np.abs(shown - expected).max() <= (8 if name.endswith(("jp2", "j2k")) else 0), name


def test_every_format_a_browser_shows(tmp_path):
    colour = (30, 160, 90)
    Image.new("RGB", (8, 8), colour).save(tmp_path / "a.bmp")
    Image.new("RGB", (8, 8), colour).save(tmp_path / "b.tiff")
    Image.new("RGB", (8, 8), colour).save(tmp_path / "c.TIF")
    Image.new("RGB", (8, 8), colour).save(tmp_path / "d.jfif", "JPEG", quality=100)
    first, second = Image.new("RGB", (8, 8), colour), Image.new("RGB", (8, 8), (0, 0, 255))
    first.save(tmp_path / "e.gif", save_all=True, append_images=[second], duration=100)
    first.save(tmp_path / "f.tif", save_all=True, append_images=[second])  # two pages: the first shown
    Image.new("1", (8, 8), 1).save(tmp_path / "g.bmp")
    (tmp_path / "h.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(32))  # a format Pillow cannot decode
    found = [p.name for p in scan_images(tmp_path)]
    assert found == ["a.bmp", "b.tiff", "c.TIF", "d.jfif", "e.gif", "f.tif", "g.bmp", "h.heic"]
    for name in found[:6]:
        shown = pixels(tmp_path / name).astype(int)
        assert np.abs(shown - colour).max() <= (3 if name.endswith(("jfif", "gif")) else 0), name
    assert np.all(pixels(tmp_path / "g.bmp") == 255)
    with pytest.raises(DataError, match=r"h\.heic \("):
        load_dataset(folder_config(tmp_path, "data.image_size=8"))  # named, not silently left out
    data = load_dataset(folder_config(tmp_path, "data.image_size=8", "data.channels=3", "data.skip_bad=true"))
    assert data.x.shape == (7, 3, 8, 8)


# ------------------------------------------------------------------------------- the folder tree


def test_hidden_files_and_folders_are_left_out(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8), 50).save(tmp_path / cls / "a.png")
    (tmp_path / "cats" / "._a.png").write_bytes(b"\0\x05\x16\x07AppleDouble")  # macOS resource fork
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.new("L", (8, 8), 0).save(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.png")
    (tmp_path / "dogs" / ".thumbs").mkdir()
    Image.new("L", (8, 8), 0).save(tmp_path / "dogs" / ".thumbs" / "a.png")
    (tmp_path / ".gan_cli_cache").mkdir()
    Image.new("L", (8, 8), 0).save(tmp_path / ".gan_cli_cache" / "grid.png")
    assert [p.relative_to(tmp_path).as_posix() for p in scan_images(tmp_path)] == ["cats/a.png", "dogs/a.png"]
    data = load_dataset(
        folder_config(tmp_path, "data.image_size=8", "data.labels=subfolders", "data.num_classes=2")
    )
    assert data.y.tolist() == [0, 1] and data.x.unique().tolist() == [50]


def test_linked_folders_are_followed_once(tmp_path):
    outside = tmp_path / "elsewhere" / "birds"
    outside.mkdir(parents=True)
    Image.new("L", (8, 8), 7).save(outside / "b.png")
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    Image.new("L", (8, 8), 3).save(root / "cats" / "c.png")
    (root / "birds").symlink_to(outside, target_is_directory=True)
    (root / "cats" / "loop").symlink_to(root, target_is_directory=True)  # a link back up the tree
    (root / "cats" / "gone.png").symlink_to(tmp_path / "missing.png")
    found = [p.relative_to(root).as_posix() for p in scan_images(root)]
    assert found == ["birds/b.png", "cats/c.png", "cats/gone.png"]
    with pytest.raises(DataError, match=r"gone\.png \(FileNotFoundError"):
        load_dataset(folder_config(root, "data.image_size=8"))
    data = load_dataset(
        folder_config(
            root, "data.image_size=8", "data.skip_bad=true", "data.labels=subfolders", "data.num_classes=2"
        )
    )
    assert data.y.tolist() == [0, 1] and [int(v) for v in data.x[:, 0, 0, 0]] == [7, 3]


def test_a_folder_that_cannot_be_listed_is_named(tmp_path, monkeypatch, capsys):
    for cls in ("cats", "locked"):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8), 60).save(tmp_path / cls / "a.png")
    real_scandir = os.scandir

    def scandir(path):  # as chmod 000 does for anyone but root
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match=r"locked \(PermissionError: Permission denied\)"):
        load_dataset(folder_config(tmp_path, "data.image_size=8"))
    data = load_dataset(folder_config(tmp_path, "data.image_size=8", "data.skip_bad=true"))
    assert len(data.x) == 1 and "skipping 1 unreadable of 2" in capsys.readouterr().out


def test_file_names_that_are_not_utf8(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    try:
        Image.new("L", (8, 8), 11).save(tmp_path / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    (tmp_path / os.fsdecode(b"d\xe9j\xe0.jpg")).write_bytes(b"broken")
    with pytest.raises(DataError) as err:
        load_dataset(folder_config(tmp_path, "data.image_size=8"))
    message = str(err.value)
    assert "d\\xe9j\\xe0.jpg" in message
    message.encode("utf-8")  # printable
    data = load_dataset(folder_config(tmp_path, "data.image_size=8", "data.skip_bad=true"))
    assert data.x.unique().tolist() == [11]


def test_decoded_cache_is_not_reused_across_decoders(tmp_path, monkeypatch):
    Image.new("L", (8, 8), 5).save(tmp_path / "a.png")
    before = files.open_image_folder(folder_config(tmp_path, "data.image_size=8")).fingerprint
    monkeypatch.setattr(files, "DECODER", "another decoder")
    assert files.open_image_folder(folder_config(tmp_path, "data.image_size=8")).fingerprint != before

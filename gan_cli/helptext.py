"""`--help` text for the commands, read from where each knob is declared.

A key's comment is the `# ...` comment beside its dataclass field (or, without one, the comment
block right above it), so the help cannot drift from the schema. Defaults are written as you would
type them on the command line (`null`, `true`, `[0.5,0.999]`, `auto`), never as Python reprs.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from gan_cli.schema import GROUPS, Config, register

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

WIDTH = 100
# pragmas for type checkers and linters (type-ignore, no-qa) are for tools, not for users
_PRAGMA = re.compile(r"^\s*(type:\s*ignore(\[[^\]]*\])?|noqa(:\s*[\w, ]+)?)\s*(#\s*)?")


@dataclass(frozen=True)
class Row:
    """One key of a help listing."""

    key: str  # dotted, e.g. eval.every
    default: str | None  # as typed on the command line; None: the key is required
    type: str  # int | float | bool | str | a|b|c (choices) | list of ... | ... or null
    comment: str  # one line


# ---- reading the schema -------------------------------------------------------------------------
def _comment_text(token: str) -> str:
    return _PRAGMA.sub("", token.lstrip("#")).strip()


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment beside it in the source of `cls` or of the dataclass it extends,
    else the comment block right above it (joined into one line); fields without either are left
    out. Empty if the source is unavailable."""
    inherited: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            inherited.update(field_comments(base))
    return inherited | _own_field_comments(cls)


def _own_field_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1][: tok.start[1]].strip():
            trailing[tok.start[0]] = _comment_text(tok.string)
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    comments = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = trailing.get(node.end_lineno or node.lineno, "")
        if not text:  # the comment-only lines directly above the field
            above, line = [], node.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, _comment_text(lines[line - 1].strip()))
                line -= 1
            text = " ".join(a for a in above if a)
        if text:
            comments[node.target.id] = text
    return comments


def type_text(tp: Any) -> str:
    """A field's type as a user reads it: `int`, `auto|cpu|cuda`, `list of int`, `str or null`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(type_text(a) for a in rest) + (" or null" if len(rest) < len(args) else "")
    if origin in (list, tuple):
        return f"list of {type_text(args[0])}" if args else "list"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(str(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def cli_value(value: Any) -> str:
    """A value as typed after `key=` on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(cli_value(v) for v in value) + "]"
    if isinstance(value, str) and (value == "" or re.search(r"[\s,=\[\]{}'\"]", value)):
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def rows(
    cls: type, values: dict[str, Any] | None = None, prefix: str = "", skip: tuple[str, ...] = ()
) -> list[Row]:
    """Every key of dataclass `cls` (nested dataclasses as `prefix.group.key`), with `values` (a
    composed config's section) as defaults where given, else the dataclass defaults."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        value = values[f.name] if values is not None and f.name in values else _default(f)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            nested = value if isinstance(value, dict) else dataclasses.asdict(value)
            out += rows(tp, nested, f"{prefix}{f.name}.")
            continue
        required = value == "???"
        out.append(
            Row(
                f"{prefix}{f.name}",
                None if required else cli_value(value),
                type_text(tp) + (", required" if required else ""),
                comments.get(f.name, ""),
            )
        )
    return out


def format_rows(items: list[Row], indent: int = 2) -> str:
    """Aligned `key=default  type  comment` lines, comments wrapped under their own column."""
    lefts = [r.key if r.default is None else f"{r.key}={r.default}" for r in items]
    left_w = min(max(map(len, lefts), default=0), 36)
    type_w = min(max((len(r.type) for r in items), default=0), 20)
    col = indent + left_w + 2 + type_w + 2
    out = []
    for left, r in zip(lefts, items, strict=True):
        head = " " * indent + f"{left:{left_w}}  {r.type:{type_w}}  "
        if len(head) > col:  # a long key or type: its comment goes on the next line
            out.append(head.rstrip())
            head = " " * col
        text = textwrap.fill(r.comment or "-", width=WIDTH, initial_indent=head, subsequent_indent=" " * col)
        out.append(text)
    return "\n".join(out)


def command_help(schema: type, usage: str, summary: str, examples: list[str]) -> str:
    """The `--help` text of a key=value command whose keys are the fields of `schema`."""
    return "\n".join(
        [
            f"usage: {usage}",
            "",
            textwrap.fill(summary, WIDTH),
            "",
            "keys (key=default  type  what it does):",
            format_rows(rows(schema)),
            "",
            "examples:",
            *(f"  {e}" for e in examples),
        ]
    )


# ---- gan-train ------------------------------------------------------------------------------------
TRAIN_EXAMPLES = [
    "gan-train                                            # DCGAN on the embedded MNIST-5k set, no network",
    "gan-train model=mlp data=ring8                       # the MLP pair on 8 Gaussians in 2-D",
    "gan-train loss=hinge optim.betas=[0.0,0.9]",
    "gan-train model=cgan trainer.precision=bf16",
    "gan-train data=cifar10 data.root=~/datasets data.download=true",
    "gan-train experiment=ring8",
    "gan-train resume=outputs/runs/<time> trainer.steps=4000   # extend a finished run",
    "gan-train -m loss=nonsaturating,hinge optim.lr_d=1e-4,2e-4   # a sweep: 4 jobs",
]
COMMON_KEYS = [
    "trainer.steps",
    "trainer.batch_size",
    "trainer.seed",
    "trainer.device",
    "trainer.precision",
    "trainer.threads",
    "trainer.log_every",
    "trainer.sample_every",
    "trainer.ckpt_every",
    "trainer.ema_decay",
    "data.root",
    "data.download",
    "data.verify",
    "data.image_size",
    "data.channels",
    "optim.lr_g",
    "optim.lr_d",
    "optim.betas",
    "loss.n_critic",
    "resume",
    "eval.every",
    "eval.metrics",
]


def _configs() -> Traversable:
    return files("gan_cli.configs")


def config_groups() -> dict[str, list[str]]:
    """Group -> its option names, from the package's configs folder (`gan_cli/configs` when
    installed, `configs/` in the repository). Options in sub-folders are `sub/name`; a folder that
    holds only folders (hydra/) contributes those as groups (hydra/launcher)."""

    def options(folder: Traversable, prefix: str = "") -> list[str]:
        found = []
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            if item.is_dir():
                found += options(item, f"{prefix}{item.name}/")
            elif item.name.endswith(".yaml"):
                found.append(prefix + item.name[: -len(".yaml")])
        return found

    groups: dict[str, list[str]] = {}
    for folder in sorted(_configs().iterdir(), key=lambda t: t.name):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        if any(i.name.endswith(".yaml") for i in folder.iterdir()):
            groups[folder.name] = options(folder)
        else:
            for sub in sorted(folder.iterdir(), key=lambda t: t.name):
                if sub.is_dir():
                    groups[f"{folder.name}/{sub.name}"] = options(sub)
    return groups


def _option_file(group: str, option: str) -> Traversable:
    *folders, name = [*group.split("/"), *option.split("/")]
    node = _configs()
    for part in folders:
        node = node / part
    return node / f"{name}.yaml"


def option_summary(group: str, option: str) -> tuple[str, dict[str, str]]:
    """An option file's first sentence of comment, and the values it sets (dotted keys from the top
    for `# @package _global_` files, else below the group; `name` and `defaults` left out)."""
    from omegaconf import OmegaConf

    text = _option_file(group, option).read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            header.append(line.lstrip("#").strip())
    comment = re.split(r"(?<!al\.)(?<=[.!?])\s+(?=[A-Z0-9])", " ".join(header))[0]
    node = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}
    assert isinstance(node, dict)
    node.pop("defaults", None)
    node.pop("name", None)
    base = "" if "# @package _global_" in text else group.replace("/", ".") + "."

    def flat(d: dict, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": cli_value(v)})
        return out

    return comment, flat(node, base)


@cache
def _composed() -> tuple[dict[str, Any], dict[str, str | None]]:
    """The default config `gan-train` runs with (as a plain dict), and each group's default option."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    register()
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    values = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(values, dict)
    values.pop("hydra")
    return values, choices


def _schema_rows(keys: list[str]) -> list[Row]:
    """Rows of the given dotted keys of the whole schema (keys the schema lacks are left out)."""
    values, _ = _composed()
    by_key = {r.key: r for r in rows(Config, values)}
    return [by_key[k] for k in keys if k in by_key]


def _groups_text() -> str:
    _, choices = _composed()
    lines = []
    groups = config_groups()
    width = max(map(len, groups)) + 2
    for group, options in groups.items():
        default = choices.get(group)
        shown = ", ".join(f"{o} (default)" if o == default else o for o in options)
        if default not in options:
            shown += f" (default: {default or 'none'})"
        lines.append(
            textwrap.fill(
                shown,
                WIDTH,
                initial_indent=f"  {group:{width}}",
                subsequent_indent=" " * (width + 2),
            )
        )
    return "\n".join(lines)


def train_help(topic: str | None = None) -> str:
    """The text of `gan-train --help` (topic None) or `gan-train --help <group>`; prints nothing. An
    unknown topic gives a message naming the valid groups. Defaults are those of the composed default
    config, read in a Hydra context of its own: call it before Hydra starts (not inside a Hydra app)."""
    groups = config_groups()
    if topic is None:
        return _train_overview(list(groups))
    topic = topic.strip().strip("/")
    if topic not in groups:
        return (
            f"gan-train --help: no config group '{topic}'. "
            f"Groups: {', '.join(groups)}.\n"
            "Run gan-train --help for the overview, gan-train --help <group> for every key of one group."
        )
    return _group_help(topic, groups[topic])


def _train_overview(groups: list[str]) -> str:
    return "\n".join(
        [
            "usage: gan-train [group=option ...] [group.key=value ...]",
            "       gan-train -m group=a,b key=x,y ...   a sweep: one job per combination",
            "       gan-train --help <group>             every key of one group, its default and comment",
            "       gan-train --cfg job [overrides]      print the resolved config and exit (trains nothing)",
            "",
            textwrap.fill(
                "Train a GAN. Every part of a run is a config choice, checked against a typed schema "
                "before any work starts: pick an option of a group with group=option, change one value "
                "with group.key=value. Each run writes to outputs/runs/<time>/.",
                WIDTH,
            ),
            "",
            "config groups and their options:",
            _groups_text(),
            "",
            "common keys (key=default  type  what it does; defaults of the default options):",
            format_rows(_schema_rows(COMMON_KEYS)),
            "",
            "examples:",
            *(f"  {e}" for e in TRAIN_EXAMPLES),
            "",
            "more:",
            "  gan-train --help <group>       every key of one group, its default and comment,",
            "                                 e.g. gan-train --help trainer; the groups:",
            textwrap.fill(", ".join(groups), WIDTH, initial_indent=" " * 33, subsequent_indent=" " * 33),
            "  gan-train --cfg job [...]      the resolved config of a command line, without training",
        ]
    )


def _group_help(group: str, options: list[str]) -> str:
    values, choices = _composed()
    schema = GROUPS.get(group)
    # an option's values that differ from the schema's defaults are what it is about
    plain = {r.key: r.default for r in rows(schema, prefix=f"{group}.")} if schema else {}
    default = choices.get(group)
    lines = [
        f"gan-train --help {group}",
        "",
        f"options (pick one with {group}=<option>; default: {default or 'none'}):",
    ]
    width = max(map(len, options), default=0) + 2
    for option in options:
        comment, sets = option_summary(group, option)
        changed = " ".join(f"{k}={v}" for k, v in sets.items() if plain.get(k) != v)
        text = " ".join(t for t in (comment, f"Sets {changed}." if changed else "") if t)
        lines.append(
            textwrap.fill(
                text or "-", WIDTH, initial_indent=f"  {option:{width}}", subsequent_indent=" " * (width + 2)
            )
        )
    if schema:
        where = f" with {group}={default}" if default else ""
        lines += [
            "",
            f"keys (key=default{where}  type  what it does):",
            format_rows(rows(schema, values.get(group), f"{group}.", skip=("name",))),
        ]
    return "\n".join(lines)

"""``sidepath model``: model files split into parts and merged back (registered in cli.py).

    sidepath model split model.pt --part-size 50M
    sidepath model verify model.pt.manifest.json
    sidepath model merge model.pt.part-0001 -o model.pt

Exit codes as the main CLI: 2 for usage errors, 1 when a part is missing or
fails its checksum.  Errors are one line, never a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sidepath.worker.cli.errors import OneLineErrors

__all__ = ["model"]


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class _PartSize(click.ParamType):  # type: ignore[type-arg]  # generic only in click's stubs, not at run time
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from sidepath.core.errors import ConfigError
        from sidepath.models.parts import parse_part_size

        if isinstance(value, int):
            return value
        try:
            return parse_part_size(value)
        except ConfigError:
            self.fail(f"{value!r} is not a size; use e.g. 50M, 1G or a number of bytes", param, ctx)


@click.group("model", cls=OneLineErrors)
def model() -> None:
    """Model files: split into parts with a SHA-256 manifest, verify, merge back."""


@model.command("split")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--part-size", type=_PartSize(), default="50M", show_default=True,
              help="Largest part; K, M, G are binary units (50M = 50 MiB).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where parts and manifest go (default: beside FILE).")
def split_cmd(file: Path, part_size: int, out_dir: Path | None) -> None:
    """Cut FILE into FILE.part-0001... and write FILE.manifest.json."""
    from sidepath.models.parts import read_manifest, split_file

    manifest = read_manifest(split_file(file, part_size, out_dir))
    click.echo(f"wrote {len(manifest.parts)} parts of up to {_mib(part_size)} and {manifest.path} "
               f"(sha256 {manifest.sha256[:16]}...)")


@model.command("verify")
@click.argument("manifest_or_part", type=click.Path(path_type=Path))
def verify_cmd(manifest_or_part: Path) -> None:
    """Check every part's size and SHA-256 without writing anything."""
    from sidepath.models.parts import verify_parts

    manifest = verify_parts(manifest_or_part)
    click.echo(f"{len(manifest.parts)} parts of {manifest.file} ok ({_mib(manifest.size)}, "
               f"sha256 {manifest.sha256[:16]}...)")


@model.command("merge")
@click.argument("manifest_or_part", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The merged file (or a folder to put it in).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def merge_cmd(manifest_or_part: Path, output: Path, force: bool) -> None:
    """Verify the parts named by a manifest (or its first part) and join them into one file."""
    from sidepath.models.parts import find_manifest, merge_parts, read_manifest

    manifest = read_manifest(find_manifest(manifest_or_part))
    dest = merge_parts(manifest.path, output, force=force)
    click.echo(f"merged {len(manifest.parts)} parts into {dest} ({_mib(manifest.size)}, sha256 ok)")

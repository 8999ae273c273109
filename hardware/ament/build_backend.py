"""PEP 517 build backend: setuptools.build_meta, except that editable wheels carry the
`[tool.setuptools.data-files]` of pyproject.toml too.

Why: setuptools leaves data_files out of editable wheels (its editable_wheel asks the
distribution for `has_data`, a method that does not exist -- it is `has_data_files` -- so
install_data never runs; seen with setuptools 84.2; pypa/setuptools#3399). `pip install -e .`
would then install no ament index marker, no share/robo_rl/package.xml and no lib/robo_rl
executables, and `ros2 run robo_rl ...` would find nothing. Regular wheels (`pip install .`)
get them from setuptools itself; this module only adds, to an editable wheel that has none, the
same files under `<name>.data/data/` (which pip installs into the prefix, `sys.prefix` in a venv,
keeping their executable bits), with a RECORD that lists them, so `pip uninstall` removes them.

Installed data files are copies: after editing hardware/launch/ or hardware/ament/, re-run the
install (`make test` does when they change).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import sys
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every other hook, unchanged)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - listed in build-system.requires for 3.10
    import tomli as tomllib


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    add_data_files(Path(wheel_directory, name), Path.cwd())
    return name


def data_files(project: Path) -> list[tuple[str, Path]]:
    """[(install directory relative to the prefix, source file)] from pyproject's data-files,
    globs expanded as setuptools does."""
    table = tomllib.loads((project / "pyproject.toml").read_text())
    entries = table.get("tool", {}).get("setuptools", {}).get("data-files", {})
    files = []
    for target, patterns in entries.items():
        for pattern in patterns:
            matches = sorted(glob.glob(str(project / pattern)))
            if not matches:
                raise FileNotFoundError(f"data-files: {pattern!r} (for {target}) matches no file")
            files += [(target, Path(m)) for m in matches if os.path.isfile(m)]
    return files


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def add_data_files(wheel: Path, project: Path) -> None:
    files = data_files(project)
    if not files:
        return
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    record_name = next(i.filename for i, _ in entries if i.filename.endswith(".dist-info/RECORD"))
    data_root = record_name[: -len(".dist-info/RECORD")] + ".data/data/"
    if any(info.filename.startswith(data_root) for info, _ in entries):
        return  # this setuptools already put them there
    added = []
    for target, path in files:
        arcname = f"{data_root}{target.strip('/')}/{path.name}"
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (path.stat().st_mode & 0xFFFF) << 16  # keeps the executable bit
        info.compress_type = zipfile.ZIP_DEFLATED
        added.append((info, path.read_bytes()))
    kept = [(i, d) for i, d in entries if i.filename != record_name]
    record = "".join(f"{i.filename},{_record_hash(d)},{len(d)}\n" for i, d in kept + added)
    record += f"{record_name},,\n"
    partial = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(partial, "w") as out:
        for info, data in kept + added:
            out.writestr(info, data)
        out.writestr(record_name, record, compress_type=zipfile.ZIP_DEFLATED)
    os.replace(partial, wheel)

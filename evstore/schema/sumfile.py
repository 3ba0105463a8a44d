"""A committed checksum file per migrations folder (like Atlas's atlas.sum).

Format of <folder>/evstore.sum:
    total <sha256 of the per-file lines>
    <file name> <sha256 of the file>
`evstore sum` rewrites it; `evstore lint` verifies it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SUM_FILE = "evstore.sum"
_HEADER = "# evstore.sum: SHA-256 of every migration file; verify with `evstore lint`, rewrite " \
          "with `evstore sum`."


def _lines(folder: Path) -> list[str]:
    return [
        f"{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}"
        for p in sorted(folder.glob("*.sql"))
    ]


def render(folder: Path) -> str:
    lines = _lines(folder)
    total = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return "\n".join([_HEADER, f"total {total}", *lines]) + "\n"


def write(folder: Path) -> Path:
    path = folder / SUM_FILE
    path.write_text(render(folder), encoding="utf-8")
    return path


@dataclass(frozen=True)
class SumProblem:
    file: str
    line: int
    message: str


def verify(folder: Path) -> list[SumProblem]:
    """Problems with the folder's sum file; empty when it matches the files exactly."""
    path = folder / SUM_FILE
    if not path.exists():
        return [SumProblem(str(path), 0, "sum file missing")]
    recorded: dict[str, str] = {}
    total: str | None = None
    problems: list[SumProblem] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            problems.append(SumProblem(str(path), number, f"malformed line {raw!r}"))
            continue
        if parts[0] == "total":
            total = parts[1]
        else:
            recorded[parts[0]] = parts[1]
    actual = dict(line.split() for line in _lines(folder))
    for name in sorted(set(recorded) | set(actual)):
        if name not in actual:
            problems.append(SumProblem(str(path), 0, f"{name} is listed but does not exist"))
        elif name not in recorded:
            problems.append(SumProblem(str(folder / name), 1, "file is not in the sum file"))
        elif recorded[name] != actual[name]:
            problems.append(SumProblem(str(folder / name), 1, "file changed since the sum file "
                                       "was written"))
    expected_total = hashlib.sha256(
        "\n".join(f"{k} {v}" for k, v in sorted(recorded.items())).encode()
    ).hexdigest()
    if total is None:
        problems.append(SumProblem(str(path), 0, "no total line"))
    elif total != expected_total:
        problems.append(SumProblem(str(path), 0, "total does not match the listed files "
                                   "(edited by hand?)"))
    return problems

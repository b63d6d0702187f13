"""How long the `monitor` command takes to start, timed as a user runs it: whole processes.

    .venv/bin/python bench/startup.py [--runs 7] [--tree PATH]

Times `monitor --help`, `monitor config check` and `monitor feeds list` (on a fresh SQLite
database with three feeds, migrated once before timing) from process start to exit, and
prints the median and the fastest of `--runs` runs. `--tree PATH` times another checkout of
the project side by side with this one (say the commit before a change: `git worktree add
/tmp/before COMMIT`), with the same Python and packages, and prints the ratio.
Target (issue 12): each of the three well under a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("--help",), ("config", "check"), ("feeds", "list"))
CONFIG = """
[feeds.one]
url = "http://127.0.0.1:9/one.xml"
[feeds.two]
url = "http://127.0.0.1:9/two.xml"
[feeds.three]
url = "http://127.0.0.1:9/three.xml"
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", type=Path, help="another checkout to time beside this one")
    args = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("--tree", args.tree.resolve())] if args.tree else [])
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "feeds.toml"
        config.write_text(CONFIG, encoding="utf-8")
        print(f"{sys.executable}; {args.runs} runs each; median (fastest) in seconds")
        for command in COMMANDS:
            timings = {name: _time(tree, config, command, args.runs) for name, tree in trees}
            line = "  ".join(f"{name} {statistics.median(t):.3f} ({min(t):.3f})"
                             for name, t in timings.items())
            if len(timings) == 2:
                ours, theirs = (statistics.median(t) for t in timings.values())
                line += f"  ratio {theirs / ours:.1f}x faster"
            print(f"monitor {' '.join(command):<14} {line}")


def _time(tree: Path, config: Path, command: tuple[str, ...], runs: int) -> list[float]:
    # Each tree gets its own database, migrated by one untimed run.
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1",
           "MONITOR_DATABASE_URL": f"sqlite:///{config.parent / (tree.name + '.db')}"}
    argv = [sys.executable, "-m", "monitor.cli", "--config", str(config), *command]
    # `python -m` puts the working directory first on sys.path: run in the tree being timed.
    subprocess.run(argv, env=env, cwd=tree, check=True, capture_output=True)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=tree, check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    return timings


if __name__ == "__main__":
    main()

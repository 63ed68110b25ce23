"""Execute the analyst notebooks in ``notebooks/`` against a lake and keep the executed copies.

``python -m lakeport.dev.notebooks [--config lakeport.yaml] [--out .lakeport/notebooks]``: each
notebook runs top to bottom in a fresh kernel with ``LAKEPORT_CONFIG`` set; a cell that raises
stops that notebook and makes the command exit 1, naming the notebook and the cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class NotebookRun:
    name: str
    cells: int
    output: Path
    error: str | None = None


def execute(notebook: Path, *, config: Path, out_dir: Path, timeout: int = 300) -> NotebookRun:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    previous = os.environ.get("LAKEPORT_CONFIG")
    os.environ["LAKEPORT_CONFIG"] = str(config.resolve())  # the kernel inherits it
    error = None
    try:
        # IPC (unix sockets in a temporary directory), not TCP ports: no port races, nothing listening.
        with tempfile.TemporaryDirectory(prefix="lakeport-kernel-") as sockets:
            km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "k"))
            NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(out_dir)}}).execute()
    except CellExecutionError as exc:
        error = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
    finally:
        if previous is None:
            os.environ.pop("LAKEPORT_CONFIG", None)
        else:
            os.environ["LAKEPORT_CONFIG"] = previous
        nbformat.write(nb, output)
    return NotebookRun(notebook.stem, sum(c.cell_type == "code" for c in nb.cells), output, error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(os.environ.get("LAKEPORT_CONFIG", "lakeport.yaml")))
    parser.add_argument("--out", type=Path, default=Path(".lakeport/notebooks"))
    args = parser.parse_args(argv)
    failed = 0
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        run = execute(notebook, config=args.config, out_dir=args.out)
        status = "ok" if run.error is None else f"FAILED: {run.error}"
        print(f"{run.name:<28} {run.cells:>3} code cells  {status}  → {run.output}")
        failed += run.error is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

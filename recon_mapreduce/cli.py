"""`pacs recon ...`: simulate cone-beam projections onto HDFS (the input of `pacs job submit fdk`)."""
from __future__ import annotations

import time

import typer

from pacs_hdfs.cli_apps import console, emit_json, fail, recon_app
from pacs_hdfs.settings import get_settings


@recon_app.command("simulate")
def simulate(size: int = typer.Option(128, help="voxels per side of the phantom volume"),
             angles: int = typer.Option(360, help="projections over the full circle"),
             out: str = typer.Option(..., help="HDFS directory (relative paths are under the root)"),
             detector: int = typer.Option(None, help="detector rows = columns (default 2 x size)"),
             band_rows: int = typer.Option(
                 None, help="detector rows per stored band file (default: half the detector; "
                 "every band costs the back-projector a per-column setup, see spark_job)"),
             truth: bool = typer.Option(True, help="also store the voxelised ground truth"),
             json_out: bool = typer.Option(False, "--json")) -> None:
    """Exact Shepp-Logan cone-beam projections stored per detector-row band."""
    from pacs_hdfs import clients
    from pacs_hdfs.hdfs_store import StorageError
    from recon_mapreduce.projection_store import simulate as simulate_scan

    hdfs = clients.hdfs(get_settings())
    start = time.perf_counter()
    try:
        with console.status(f"projecting {angles} views of a {size}^3 phantom"):
            rows = detector or 2 * size
            band_rows = band_rows or max(1, (rows + 1) // 2)
            meta = simulate_scan(hdfs, out, size, angles, detector, band_rows, truth)
    except (StorageError, ValueError) as error:
        fail(error)
    summary = {"path": hdfs.abs(out), "size": size, "angles": angles,
               "detector": [meta["geometry"]["n_rows"], meta["geometry"]["n_cols"]],
               "bands": len(meta["bands"]), "band_rows": band_rows,
               "truth": hdfs.abs(f"{out}/{meta['truth']}") if meta["truth"] else None,
               "seconds": round(time.perf_counter() - start, 2)}
    if json_out:
        emit_json(summary)
    else:
        console.print(f"wrote {summary['bands']} band files to {summary['path']} "
                      f"in {summary['seconds']} s")

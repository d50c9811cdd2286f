"""`pacs backup create / list / restore / delete` (see pacs_hdfs/backup.py and docs/BACKUP.md)."""
from __future__ import annotations

import typer

from pacs_hdfs.cli_apps import console, emit_json, fail, group
from pacs_hdfs.settings import get_settings

backup_app = group("backup", "Backups of the archive (HDFS + HBase snapshots): create, list, "
                             "restore, delete.")


def _say(json_out: bool):
    return (lambda _m: None) if json_out else console.log


@backup_app.command("create")
def backup_create(label: str = typer.Option("", help="added to the name (letters, digits, "
                                                     "'.', '_', '-')"),
                  json_out: bool = typer.Option(False, "--json")) -> None:
    """Snapshot every HBase table of the prefix, then the HDFS root; write the manifest."""
    from pacs_hdfs.backup import create
    try:
        m = create(get_settings(), label=label, progress=_say(json_out))
    except Exception as e:  # noqa: BLE001 - reported to the user with its cause
        fail(e)
    if json_out:
        emit_json(m.to_json())
    else:
        rows = sum(t["rows"] for t in m.hbase.values())
        console.print(f"[green]backup {m.name}[/green]: {len(m.hbase)} tables ({rows} rows), "
                      f"HDFS snapshot {m.hdfs_root}/.snapshot/{m.hdfs_snapshot}, "
                      f"{m.seconds['total']} s")


@backup_app.command("list")
def backup_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """Backups of this archive whose snapshots still exist, oldest first."""
    from pacs_hdfs.backup import list_backups
    try:
        found = list_backups(get_settings())
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        emit_json([m.to_json() for m in found])
        return
    from rich.console import Console
    from rich.table import Table
    t = Table(title="backups")
    for col in ("name", "created", "kind", "schema", "code", "instance rows"):
        t.add_column(col)
    for m in found:
        t.add_row(m.name, m.created, m.kind, str(m.schema_version), m.code_version,
                  str(m.hbase.get("instance", {}).get("rows", "-")))
    Console().print(t)


@backup_app.command("restore")
def backup_restore(name: str,
                   yes: bool = typer.Option(False, "--yes", help="do not ask"),
                   no_safety_backup: bool = typer.Option(
                       False, "--no-safety-backup",
                       help="skip the backup of the current state taken first"),
                   json_out: bool = typer.Option(False, "--json")) -> None:
    """Bring this archive's tables and HDFS root back to backup NAME. What was stored after it
    leaves the live archive (a safety backup keeps it). Stop the ingest services first."""
    from pacs_hdfs.backup import restore
    s = get_settings()
    if not yes and not typer.confirm(
            f"Restore {s.hdfs_root} and the {s.hbase_table_prefix}_* tables to backup {name}?"):
        raise typer.Exit(1)
    try:
        report = restore(s, name, safety_backup=not no_safety_backup, progress=_say(json_out))
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        emit_json(report)
    else:
        h = report["hdfs"]
        console.print(f"[green]restored {name}[/green] in {report['seconds']['total']} s: "
                      f"{len(report['hbase'])} tables; HDFS {h['steps']} steps, "
                      f"{h['copied_files']} files copied back, {h['deleted']} deleted, "
                      f"{h['files_verified']} files verified; safety backup "
                      f"{report['safety_backup'] or 'none'}")
        console.print(report["next"])


@backup_app.command("delete")
def backup_delete(name: str, yes: bool = typer.Option(False, "--yes", help="do not ask"),
                  json_out: bool = typer.Option(False, "--json")) -> None:
    """Delete backup NAME (its snapshots keep the blocks of files deleted since: compaction
    frees no space while a backup holds them)."""
    from pacs_hdfs.backup import delete
    if not yes and not typer.confirm(f"Delete backup {name}?"):
        raise typer.Exit(1)
    try:
        report = delete(get_settings(), name)
    except Exception as e:  # noqa: BLE001
        fail(e)
    if json_out:
        emit_json(report)
    else:
        console.print(f"deleted backup {name} ({report['hbase_snapshots_deleted']} HBase "
                      f"snapshots and HDFS snapshot {report['hdfs_snapshot']})")

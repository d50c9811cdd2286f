"""`pacs study delete|reject|restore|compact|notes`: the study lifecycle
(pacs_hdfs/dicom/lifecycle.py) from the command line, as the operator's OS user.

    pacs study delete UID [--series UID [--instance UID]] [--json]   rows go now; 113039
    pacs study reject UID [--series UID [--instance UID]] [--json]   rows go, bytes kept; 113001
    pacs study restore UID [--json]                                  bring rejected objects back
    pacs study compact [--all] [--grace S] [--json]                  free the removed bytes
    pacs study notes UID [--json]                                    the study's records

`--json` prints the outcome document: action, scope {level, study, series, sop}, note (the
rejection note's SOP Instance UID), reason [code, scheme, meaning], objects, bytes,
files_released, rejected_store_bytes_deleted, seconds, extra; for compact: series,
files_before, files_after, objects_moved, bytes_moved, bytes_deleted, released_files_deleted,
released_bytes_reclaimed, orphan_files_deleted, orphan_bytes_reclaimed, left_young,
left_unfinished, bad_objects, purge_entries, purge_entries_done, seconds.
Exit code: 0 done, 1 nothing matched / refused, 2 storage error.
"""
from __future__ import annotations

import typer

from pacs_hdfs.cli_apps import console, emit_json, fail, group
from pacs_hdfs.settings import get_settings

study_app = group("study", "Study lifecycle: delete, reject, restore, compact (admin).")


def _lifecycle():
    from pacs_hdfs.dicom.lifecycle import Lifecycle
    return Lifecycle(get_settings())


def _run(fn, json_out: bool, say) -> None:
    from pacs_hdfs.dicom.lifecycle import NotFound, Refused
    from pacs_hdfs.hdfs_store import StorageError
    try:
        result = fn()
    except (NotFound, Refused, ValueError) as e:
        fail(e, 1)
    except StorageError as e:
        fail(e, 2)
    doc = result if isinstance(result, dict) else result.as_dict()
    if json_out:
        emit_json(doc)
    else:
        console.print(say(doc))


def _remove(action: str, study: str, series: str, instance: str, json_out: bool) -> None:
    from pacs_hdfs.dicom.lifecycle import Scope, os_user

    def go():
        return _lifecycle().remove(action, Scope(study, series, instance), os_user())
    _run(go, json_out, lambda d: (
        f"[green]{action}[/green] {d['scope']['level']} {study}: {d['objects']} object(s), "
        f"{d['bytes']} bytes, note {d['note'] or '-'} ({' / '.join(d['reason'][::2])}); "
        f"space is freed by `pacs study compact`"))


SERIES = typer.Option("", "--series", help="only this series of the study")
INSTANCE = typer.Option("", "--instance", help="only this instance (needs --series)")
JSON = typer.Option(False, "--json", help="print the outcome document")


@study_app.command("delete")
def delete(study: str, series: str = SERIES, instance: str = INSTANCE,
           json_out: bool = JSON) -> None:
    """Delete: index rows go at once (Q/R, DICOMweb and the portal stop showing it), a KOS
    note (113039 Data Retention Policy Expired) is recorded; cannot be restored. A rejected
    study's kept bytes are deleted too."""
    _remove("delete", study, series, instance, json_out)


@study_app.command("reject")
def reject(study: str, series: str = SERIES, instance: str = INSTANCE,
           patient_safety: bool = typer.Option(False, "--patient-safety",
                                               help="reason 113037 instead of 113001"),
           json_out: bool = JSON) -> None:
    """Reject (IOCM, 113001 Rejected for Quality Reasons): hidden at once like delete, but the
    bytes are kept aside so `pacs study restore` can bring it back."""
    _remove("reject-patient-safety" if patient_safety else "reject", study, series, instance,
            json_out)


@study_app.command("restore")
def restore(study: str, json_out: bool = JSON) -> None:
    """Bring back the rejected objects of a study (not a deleted one)."""
    from pacs_hdfs.dicom.lifecycle import os_user
    _run(lambda: _lifecycle().restore(study, os_user()), json_out, lambda d: (
        f"[green]restored[/green] {d['objects']} object(s) of {study} ({d['bytes']} bytes)"))


@study_app.command("compact")
def compact(all_series: bool = typer.Option(False, "--all",
                                            help="also compact every other series directory"),
            grace: float = typer.Option(3600.0, "--grace", min=0,
                                        help="seconds before an unreferenced file that no "
                                             "lifecycle record names is deleted"),
            json_out: bool = JSON) -> None:
    """Rewrite containers without the deleted/rejected objects and free their HDFS space."""
    from pacs_hdfs.dicom.lifecycle import os_user
    _run(lambda: _lifecycle().compact(os_user(), all_series, grace), json_out, lambda d: (
        f"[green]compacted[/green] {d.get('series', 0)} series: "
        f"{d['bytes_deleted']} bytes deleted ({d['released_bytes_reclaimed']} of removed "
        f"objects), {d.get('objects_moved', 0)} object(s) rewritten, in {d['seconds']} s"))


@study_app.command("notes")
def notes(study: str, json_out: bool = JSON) -> None:
    """The study's lifecycle records (rejection notes) and their state."""
    def go():
        return {"study": study, "notes": [
            {k: v for k, v in r.items() if k not in ("kept", "objects")}
            | {"objects": len(r["objects"])} for r in _lifecycle().notes(study)]}
    _run(go, json_out, lambda d: "\n".join(
        f"{r['time']} {r['action']:8} {r['state']:9} {r['scope']['level']:8} "
        f"{r['objects']} object(s) note {r['note']} by {r['user']}" for r in d["notes"])
        or "no lifecycle records")

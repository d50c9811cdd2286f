"""`pacs portal` (run the web portal) and `pacs user add/list/set-role/set-password/disable/
enable/delete` (the admin page's users section does the same)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from pacs_hdfs import logs, metrics, schema_version
from pacs_hdfs.cli_apps import app, console, emit_json, fail, search_app, user_app
from pacs_hdfs.hardening import AEAD_CIPHERS
from pacs_hdfs.settings import get_settings

def tls_files(s) -> tuple[str, str] | None:
    """(certificate, key) when portal_cert and portal_key are set (`PACS_PORTAL_CERT`, ...)."""
    if not s.portal_cert and not s.portal_key:
        return None
    if not (s.portal_cert and s.portal_key and s.portal_cert.is_file()
            and s.portal_key.is_file()):
        fail("portal_cert and portal_key must both name existing files")
    return str(s.portal_cert), str(s.portal_key)


@app.command("portal")
def portal(host: str = typer.Option(None, help="default: settings portal_bind (127.0.0.1)"),
           port: int = typer.Option(None, help="default: settings.portal_port (8000)")) -> None:
    """Run the web portal in the foreground (HTTPS when certificates are configured)."""
    import uvicorn

    from portal.app import create_app
    s = get_settings()
    tls = tls_files(s)
    host = host or s.portal_bind
    logs.setup("portal", s.path("logs", "portal.log"))
    schema_version.check_at_start(s, "portal")
    web = create_app(s, secure_cookies=tls is not None)
    web.state.portal.search.start()     # load the case index while the first users sign in
    metrics.register_scrape(web.state.portal.search.lag_metrics)
    # AEAD suites only; they exist in TLS 1.2 and 1.3 only, so older versions cannot connect
    ssl = ({"ssl_certfile": tls[0], "ssl_keyfile": tls[1], "ssl_ciphers": AEAD_CIPHERS}
           if tls else {})
    console.print(f"portal on {'https' if tls else 'http'}://{host}:{port or s.portal_port}/")
    metrics.serve("portal", s)
    uvicorn.run(web, host=host, port=port or s.portal_port, log_config=None, access_log=False,
                proxy_headers=False, timeout_graceful_shutdown=5, **ssl)


def _users():
    from pacs_hdfs import clients
    from portal.users import UserStore
    return UserStore(clients.hbase(get_settings()))


def _password(password_file: Path | None) -> str:
    if password_file:
        return password_file.read_text().rstrip("\r\n")
    if os.environ.get("PACS_USER_PASSWORD"):
        return os.environ["PACS_USER_PASSWORD"]
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


def _change(action: str, change, name: str, **details):
    """Run one user change, exit 2 with its message if refused, audit it."""
    from pacs_hdfs import audit
    from portal.users import UserError
    try:
        result = change(_users())
    except UserError as e:
        fail(e, 2)
    audit.record(get_settings(), os.environ.get("USER", "cli"), action, name, via="cli",
                 **details)
    return result


@user_app.command("add")
def user_add(name: str,
             role: str = typer.Option(..., "--role", help="teacher | analyst | admin"),
             password_file: Path = typer.Option(None, "--password-file", exists=True,
                                                dir_okay=False, help="file holding the password"),
             replace: bool = typer.Option(False, "--replace", help="overwrite an existing user "
                                          "(new password and role; ends its sessions)"),
             json_out: bool = typer.Option(False, "--json")) -> None:
    """Add a portal user (password from --password-file, $PACS_USER_PASSWORD or a prompt)."""
    password = _password(password_file)
    user = _change("user-add", lambda users: users.add(name, role, password, replace=replace),
                   name, role=role, replace=replace)
    if json_out:
        emit_json(user.public())
    else:
        console.print(f"added {user.name} ({user.role})")


@user_app.command("list")
def user_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """List portal users: name, role, created, disabled."""
    users = _users().list()
    if json_out:
        emit_json([u.public() for u in users])
    else:
        for u in users:
            state = "disabled" if u.disabled else "active"
            console.print(f"{u.name}\t{u.role}\t{state}\t{u.created}")


@user_app.command("set-role")
def user_set_role(name: str, role: str) -> None:
    """Change a user's role (applies to its live sessions at their next request)."""
    _change("user-role", lambda users: users.set_role(name, role), name, role=role)
    console.print(f"{name} is now {role}")


@user_app.command("set-password")
def user_set_password(name: str,
                      password_file: Path = typer.Option(None, "--password-file", exists=True,
                                                         dir_okay=False)) -> None:
    """Give a user a new password (file, $PACS_USER_PASSWORD or a prompt); ends its sessions."""
    password = _password(password_file)
    _change("user-password", lambda users: users.set_password(name, password), name)
    console.print(f"new password for {name}; its sessions ended")


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable a user: it cannot sign in, and its live sessions end at once."""
    _change("user-disable", lambda users: users.set_disabled(name, True), name)
    console.print(f"{name} is disabled")


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Enable a disabled user again."""
    _change("user-enable", lambda users: users.set_disabled(name, False), name)
    console.print(f"{name} is enabled")


@user_app.command("delete")
def user_delete(name: str, yes: bool = typer.Option(False, "--yes", help="do not ask")) -> None:
    """Delete a user; its live sessions end at once."""
    if not yes:
        typer.confirm(f"delete portal user {name}?", abort=True)
    _change("user-delete", lambda users: users.delete(name), name)
    console.print(f"{name} is deleted")


@search_app.command("backfill")
def search_backfill(as_json: bool = typer.Option(False, "--json")) -> None:
    """Write case-search feed rows for every stored visit (visits stored before the feed
    existed); idempotent, the portal's index keeps one version of each visit."""
    from pacs_hdfs import clients
    from portal.search.feed import backfill
    count = backfill(clients.hbase(get_settings()))
    if as_json:
        emit_json({"visits": count})
    else:
        console.print(f"feed rows written for {count} visits")


@search_app.command("index")
def search_index() -> None:
    """Run the case-search indexer in the foreground: tails the HBase feed into the shared
    index that every portal process reads. Portals index too when no indexer runs; only one
    process holds the index's writer lock at a time."""
    from portal.search.service import SharedSearch
    s = get_settings()
    logs.setup("search-indexer", s.path("logs", "search-indexer.log"))
    live = SharedSearch(s).start()
    console.print(f"case-search indexer on {live.dir} (Ctrl-C stops)")
    said = False
    try:
        while True:
            time.sleep(5)
            if live.indexer is None and not said:
                console.print("another process indexes now; this one takes over when it stops")
            said = live.indexer is None
    except KeyboardInterrupt:
        live.stop()


@search_app.command("rebuild")
def search_rebuild(as_json: bool = typer.Option(False, "--json"),
                   timeout: float = typer.Option(3600, help="seconds to wait for the Spark job")
                   ) -> None:
    """Rebuild the shared case index from the stored visits: a Spark job (`search-rebuild`)
    turns the visit Parquet into search documents, then a new index is built from them,
    caught up with the feed and swapped in (the running indexer lets go meanwhile)."""
    from analytics_jobs.service import JobService
    from pacs_hdfs import clients
    from portal.search import rebuild
    from portal.search.service import index_dir
    s = get_settings()
    jobs = JobService(s)
    t0 = time.monotonic()
    rec = jobs.wait(jobs.submit("search-rebuild", {}, user="cli").id, timeout=timeout)
    if rec.state != "succeeded":
        fail(f"search-rebuild job {rec.id} ended {rec.state}: {rec.error}")
    result = json.loads(jobs.artifact(rec.id))
    job_s = time.monotonic() - t0
    hdfs, live = clients.hdfs(s), index_dir(s)
    fresh = rebuild.build(live.with_name(live.name + ".rebuild"),
                          rebuild.read_documents(hdfs, result["documents"], result["received_ms"]))
    build_s = time.monotonic() - t0 - job_s
    swapped = rebuild.swap(live, fresh, clients.hbase(s))
    out = {"job": rec.id, "visits": result["visits"], "job_s": round(job_s, 1),
           "build_s": round(build_s, 1), "total_s": round(time.monotonic() - t0, 1), **swapped}
    hdfs.delete(result["documents"], recursive=True)
    if as_json:
        emit_json(out)
    else:
        console.print(f"case index rebuilt: {out['visits']} visits (Spark {out['job_s']} s, "
                      f"index {out['build_s']} s, {out['tail_visits']} from the feed since)")

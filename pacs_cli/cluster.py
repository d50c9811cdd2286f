"""`pacs cluster ...`, `pacs init`, `pacs up` and `pacs down`: the embedded cluster (deploy/) and
the archive's layout, started together with every area's services."""
from __future__ import annotations

import typer
from rich.console import Console

from pacs_hdfs.cli_apps import app, cluster_app, console, emit_json
from pacs_hdfs.settings import get_settings


def _supervisor():
    from deploy.supervisor import ClusterError, Supervisor
    try:
        return Supervisor(get_settings())
    except ClusterError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2)


def _fail(e: Exception) -> None:
    from pacs_hdfs.cli_apps import fail
    fail(e)


def _start_cluster():
    """Start the cluster with live progress; exit with the failing daemon's log tail."""
    from deploy.supervisor import ClusterError
    sup = _supervisor()
    try:
        with console.status("starting cluster") as st:
            result = sup.up(progress=lambda m: (st.update(m), console.log(m)))
    except ClusterError as e:
        _fail(e)
    return sup, result


@cluster_app.command("up")
def cluster_up(json_out: bool = typer.Option(False, "--json")) -> None:
    """Start every daemon and wait until the cluster is really healthy."""
    sup, result = _start_cluster()
    status = sup.status()
    if json_out:
        emit_json({"seconds": result["seconds"], **status})
    else:
        console.print(f"[green]cluster up[/green] in {result['seconds']} s, "
                      f"{status['hdfs']['live_datanodes']} live DataNodes, "
                      f"{status['total_rss_mb']:.0f} MB RSS")


@cluster_app.command("down")
def cluster_down() -> None:
    """Stop every daemon (gracefully, then forcibly)."""
    sup = _supervisor()
    sup.down(progress=console.log)
    console.print("cluster down")


@cluster_app.command("status")
def cluster_status(json_out: bool = typer.Option(False, "--json")) -> None:
    """Daemons (pid, ports, alive, RSS) and health as the daemons themselves report it."""
    status = _supervisor().status()
    if json_out:
        emit_json(status)
    else:
        from rich.table import Table
        t = Table(title=f"cluster ({'healthy' if status['healthy'] else 'NOT healthy'})")
        for col in ("daemon", "pid", "alive", "ports", "RSS MB"):
            t.add_column(col)
        for d in status["daemons"]:
            t.add_row(d["name"], str(d["pid"] or "-"), "yes" if d["alive"] else "[red]no[/red]",
                      ",".join(map(str, d["ports"])), str(d["rss_mb"] or "-"))
        Console().print(t)
        h = status["hdfs"]
        Console().print(f"HDFS: {h['live_datanodes']}/{h['expected_datanodes']} live DataNodes, "
                        f"safemode={h['safemode']}; HBase thrift ok={status['hbase']['thrift_ok']};"
                        f" Spark workers={status['spark']['alive_workers']}")
    raise typer.Exit(0 if status["healthy"] else 1)


@cluster_app.command("stop-node")
def cluster_stop_node(name: str) -> None:
    """Stop one daemon (e.g. `datanode-2`, for fault tests) or one of our services
    (`job-runner`, `scp`, `gateway`, `portal`, e.g. to load changed code)."""
    sup = _supervisor()
    try:
        stopped = sup.stop_daemon(name if _service_args(name) else _known(name))
    except KeyError as e:
        _fail(e)
    console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


@cluster_app.command("watch")
def cluster_watch(interval: float = typer.Option(3.0, help="seconds between checks")) -> None:
    """Restart crashed daemons and services in the foreground (`pacs cluster up` starts this
    in the background as `watchdog`; `stop-node` is never undone)."""
    import logging

    from pacs_hdfs import logs
    logs.setup("watchdog")  # stderr: the supervisor writes it to logs/watchdog.log
    log = logging.getLogger("deploy.watchdog")
    log.info("watching the embedded cluster every %.0f s", interval)
    _supervisor().watch(interval, log=log.warning)


@cluster_app.command("start-node")
def cluster_start_node(name: str) -> None:
    """Start one daemon or service again."""
    sup = _supervisor()
    try:
        args = _service_args(name)
        pid = sup.start_python_service(name, "pacs_cli", *args) if args \
            else sup.start_daemon(_known(name))
    except KeyError as e:
        _fail(e)
    console.print(f"{name}: running as pid {pid}")


def _service_args(name: str) -> tuple[str, ...] | None:
    from deploy.services import SERVICES
    return dict(SERVICES).get(name)


def _known(name: str) -> str:
    from deploy.daemons import by_name
    return by_name(get_settings(), name).name


@app.command("init")
def init(json_out: bool = typer.Option(False, "--json"),
         upgrade: bool = typer.Option(False, "--upgrade",
                                      help="migrate an archive of an older schema version")
         ) -> None:
    """Create the HDFS layout and HBase tables (idempotent). Refuses (exit 3) an archive of an
    older schema version unless `--upgrade`, and one of a newer version always."""
    from pacs_hdfs.schema_version import SchemaError
    from pacs_hdfs.storage import init_storage
    try:
        report = init_storage(get_settings(), upgrade=upgrade)
    except SchemaError as e:
        from pacs_hdfs.cli_apps import fail
        fail(e, code=3)
    except Exception as e:  # noqa: BLE001 - reported to the user with its cause
        _fail(e)
    if json_out:
        emit_json(report)
    else:
        sv = report["schema"]
        console.print(f"HDFS dirs: {', '.join(report['hdfs_dirs'])}")
        console.print(f"HBase tables: {', '.join(report['hbase_tables'])}")
        console.print(f"schema version {sv['version']}" + (
            f" (upgraded from {sv['from']})" if sv["action"] == "upgrade" else ""))


def _top_level_commands() -> set[str]:
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}


@app.command("up")
def up() -> None:
    """Cluster + init + every service in the background."""
    from deploy.services import available
    from hl7_gateway.certs import create_dev_pki, issue_edge_cert
    settings = get_settings()
    # the embedded default's PKI: the MDC's CA and server certificate, and the local edge's
    # client certificate (kept when present; a real site installs its own)
    create_dev_pki(settings.certs_path)
    issue_edge_cert(settings.certs_path, settings.edge_name)
    sup, result = _start_cluster()
    init(json_out=False, upgrade=False)
    for name, args in available(_top_level_commands()):
        pid = sup.start_python_service(name, "pacs_cli", *args)
        console.log(f"{name}: pid {pid}, log {sup.log_file(name)}")
    console.print(f"[green]up[/green] (cluster in {result['seconds']} s)")


@app.command("down")
def down() -> None:
    """Stop every service, then the cluster."""
    _supervisor().down(progress=console.log)
    console.print("down")

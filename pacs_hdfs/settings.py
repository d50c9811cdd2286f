"""The one settings object: every endpoint, path and size, read once from `pacs.toml` and `PACS_*`.

Precedence: constructor arguments > environment (`PACS_WEBHDFS_URL=...`) > `pacs.toml` in the
working directory (or the file named by `PACS_CONFIG`) > the defaults below. The defaults describe
the embedded single-machine cluster; pointing at a real cluster is configuration only
(`embedded = false` plus the endpoints; see deploy/cluster/).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore")

    # --- where state lives ---------------------------------------------------------------
    home: Path = Field(Path(".pacs"), description="state, data, logs and pid files")
    jars_dir: Path = Field(REPO_ROOT / ".cache" / "jars", description="Maven-resolved jars")
    # Every service's log is JSON lines, rotated at this size (pacs_hdfs/logs.py).
    log_max_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="log file rotation size")
    log_backups: int = Field(5, ge=0, description="rotated log files kept per service")
    # Every service's Prometheus /metrics listener (pacs_hdfs/metrics.py); port 0 = none.
    metrics_bind: str = Field("127.0.0.1", description="listen address of the /metrics listeners")
    metrics_ports: dict[str, int] = Field(default_factory=lambda: {
        "edge": 9464, "scp": 9465, "gateway": 9466, "portal": 9467, "job-runner": 9468,
    }, description="service -> /metrics port (0 = off)")

    # --- the cluster ----------------------------------------------------------------------
    embedded: bool = Field(True, description="false = use a real cluster; `pacs cluster` refuses")
    datanodes: int = Field(3, ge=1, le=9)
    namenode_rpc: str = "hdfs://127.0.0.1:9000"
    webhdfs_url: str = "http://127.0.0.1:9870"
    hdfs_user: str = "pacs"
    hdfs_root: str = "/pacs"
    replication: int | None = Field(None, description="default min(3, datanodes)")
    zookeeper_port: int = 2181
    thrift_host: str = "127.0.0.1"
    thrift_port: int = 9090
    hbase_table_prefix: str = Field("pacs", description="HBase namespace for our tables")
    spark_master: str = "spark://127.0.0.1:7077"
    spark_master_webui: str = "http://127.0.0.1:8080"
    # The worker advertises more cores than the machine has so that the job runner's warm
    # executors (spark_runner_cores) never starve another Spark application (a test, a notebook).
    spark_worker_cores: int = 4
    spark_runner_cores: int = 2
    spark_worker_memory: str = "4g"
    spark_executor_memory: str = "1g"

    # Explicit JVM heaps (MB) per daemon kind: the embedded cluster must stay lean.
    heap_mb: dict[str, int] = Field(default_factory=lambda: {
        "namenode": 256, "datanode": 128, "zookeeper": 64, "hbase-master": 256,
        "hbase-regionserver": 768, "hbase-thrift": 384, "spark-master": 128,
        "spark-worker": 128, "resourcemanager": 256, "nodemanager": 192,
    })

    # --- cluster binds ----------------------------------------------------------------------
    # The address every listener of the embedded cluster binds (NameNode, DataNodes, ZooKeeper,
    # HBase, Thrift, Spark master/worker RPC and web UIs) and the Spark driver of our jobs.
    # Loopback by default: nothing of the cluster is reachable from another host unless this
    # names another address (deploy/configs.py, deploy/daemons.py, tests/security/test_binds.py).
    cluster_bind: str = Field("127.0.0.1", description="listen address of the embedded cluster's "
                              "daemons and of the Spark driver")

    @property
    def cluster_host(self) -> str:
        """The address the cluster's daemons hand out to clients and to each other: the bind
        address, or loopback when that is a wildcard."""
        return "127.0.0.1" if self.cluster_bind in ("0.0.0.0", "::", "") else self.cluster_bind
    # --- end of cluster binds ---------------------------------------------------------------

    # --- YARN and real clusters (issue 16; deploy/cluster/README.md) --------------------------
    # embedded = false: every endpoint these settings do not name (in pacs.toml, PACS_* or as an
    # argument) comes from the cluster's own client configuration (pacs_hdfs/hadoop_conf.py):
    # HADOOP_CONF_DIR (fs.defaultFS, every NameNode of an HA nameservice -> webhdfs_url
    # 'url1;url2', dfs.replication, the ResourceManager(s)), HBASE_CONF_DIR (ZooKeeper port,
    # Thrift host/port if named) and SPARK_CONF_DIR (spark.master, executor memory, queue).
    # yarn = true: the embedded cluster also runs a ResourceManager and NodeManager(s), and jobs
    # run on YARN (spark.master = yarn) with this environment shipped as an archive, so nodes
    # need no project install. With embedded = false, spark_master = "yarn" does the same on a
    # real cluster. Job status and cancel then go through the ResourceManager's REST API.
    yarn: bool = Field(False, description="run jobs on YARN (embedded: also start RM + NMs)")
    yarn_rm_url: str = Field("http://127.0.0.1:8088",
                             description="ResourceManager web/REST address(es), ';'-separated")
    yarn_queue: str = Field("default", description="YARN queue of our Spark applications")
    spark_python_archive: Path | None = Field(
        None, description="venv-pack archive shipped to YARN executors (spark.archives); "
        "default $PACS_HOME/data/pacs-env.tar.gz, built when missing or stale")
    spark_ship_python: bool | None = Field(
        None, description="ship the Python archive and our code to executors; default: on YARN")
    hadoop_conf_dir: Path | None = Field(None, description="default $HADOOP_CONF_DIR")
    hbase_conf_dir: Path | None = Field(None, description="default $HBASE_CONF_DIR, else the "
                                        "Hadoop one")
    spark_conf_dir: Path | None = Field(None, description="default $SPARK_CONF_DIR")
    spark_driver_host: str | None = Field(
        None, description="address executors reach the driver at; default: cluster_host when "
        "embedded, else spark-defaults' spark.driver.host, else this host's address on the "
        "route to the Spark master / ResourceManager / NameNode")
    spark_driver_bind: str | None = Field(
        None, description="driver listen address; default cluster_bind when embedded, else "
        "spark_driver_host")
    job_runner: Literal["auto", "external"] = Field(
        "auto", description="auto: `pacs job submit` starts a runner when none reports in; "
        "external: a managed one (systemd pacs-job-runner.service) is expected")

    @field_validator("spark_python_archive", "hadoop_conf_dir", "hbase_conf_dir",
                     "spark_conf_dir", mode="before")
    @classmethod
    def _cluster_empty_path_is_none(cls, v):
        return v or None

    @model_validator(mode="after")
    def _endpoints_from_cluster_conf(self) -> Settings:
        """embedded = false: fill what was not set explicitly from the conf directories."""
        if self.embedded:
            return self
        from pacs_hdfs.hadoop_conf import ClusterConf, derived_settings
        conf = ClusterConf.load(*self.cluster_conf_dirs)
        for name, value in derived_settings(conf).items():
            if name not in self.model_fields_set:
                self.__dict__[name] = value            # not "set": pacs.toml still wins
                self._from_conf_dirs[name] = value
        self._conf_files = conf.files
        return self

    _from_conf_dirs: dict[str, object] = PrivateAttr(default_factory=dict)
    _conf_files: list[str] = PrivateAttr(default_factory=list)

    @property
    def cluster_conf_dirs(self) -> tuple[Path | None, Path | None, Path | None]:
        """(Hadoop, HBase, Spark) client configuration directories in use (None: none)."""
        from pacs_hdfs.hadoop_conf import conf_dirs
        return conf_dirs(self.hadoop_conf_dir, self.hbase_conf_dir, self.spark_conf_dir)

    @property
    def from_conf_dirs(self) -> dict[str, object]:
        """The fields that came from the conf directories (`pacs doctor` shows them)."""
        return dict(self._from_conf_dirs)

    @property
    def webhdfs_urls(self) -> list[str]:
        """The NameNodes' WebHDFS URLs (several with HA; `webhdfs_url` is ';'-separated)."""
        return [u.strip().rstrip("/") for u in self.webhdfs_url.split(";") if u.strip()]

    @property
    def yarn_rm_urls(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.yarn_rm_url.split(";") if u.strip()]

    @property
    def on_yarn(self) -> bool:
        """Jobs run on YARN: `yarn = true` or `spark_master = "yarn"`."""
        return self.yarn or self.spark_master == "yarn"

    @property
    def ships_python(self) -> bool:
        """Executors get the packed environment and our code instead of this venv's path."""
        return self.on_yarn if self.spark_ship_python is None else self.spark_ship_python

    @property
    def python_archive(self) -> Path:
        return self.spark_python_archive or self.path("data", "pacs-env.tar.gz")
    # --- end of YARN and real clusters ---------------------------------------------------------

    # --- services -------------------------------------------------------------------------
    # The MDC's TLS block: server certificate and key, CA and client certificates that
    # `pacs certs` writes and the gateway serves with (hl7_gateway/certs.py).
    certs_dir: Path | None = Field(None, description="certificates; default $PACS_HOME/certs")
    gateway_port: int = Field(8443, description="HL7 v3 + STOW-RS gateway port (mTLS)")
    gateway_bind: str = Field("127.0.0.1", description="gateway listen address")
    gateway_max_bytes: int = Field(20 * 1024 * 1024, ge=1024,
                                   description="HL7 request body limit in bytes")
    gateway_log: Path | None = Field(None, description="default $PACS_HOME/logs/gateway.log")
    portal_port: int = Field(8000, description="portal port")
    portal_bind: str = Field("127.0.0.1", description="portal listen address")
    portal_cert: Path | None = Field(None, description="portal HTTPS certificate (PEM); "
                                     "with portal_key: HTTPS, else plain HTTP")
    portal_key: Path | None = Field(None, description="portal HTTPS key (PEM)")

    @field_validator("certs_dir", "gateway_log", "portal_cert", "portal_key", mode="before")
    @classmethod
    def _service_empty_path_is_none(cls, v):
        return v or None

    @property
    def certs_path(self) -> Path:
        return self.certs_dir or self.path("certs")

    # --- MDC DIMSE (`pacs scp`) ---------------------------------------------------------------
    # The data center's own DICOM service: Query/Retrieve for data-center users, and C-STORE
    # only of objects that verify as de-identified (hospitals running their own de-identifier).
    # Modalities send to the hospital edge (edge_port 11112, AE PACS), never here.
    mdc_dimse_ae_title: str = Field("MDC", description="AE title of the MDC's DIMSE service")
    mdc_dimse_port: int = Field(11114, description="port of the MDC's DIMSE service")
    mdc_dimse_bind: str = Field("127.0.0.1", description="listen address")
    mdc_dimse_qr_aes: str = Field("", description="calling AE titles allowed Query/Retrieve "
                                  "(comma-separated); empty = nobody")
    mdc_dimse_store_aes: str = Field("", description="calling AE titles allowed C-STORE of "
                                     "de-identified objects; empty = nobody")
    mdc_dimse_destinations: str = Field("", description="C-MOVE destinations AE=host:port,...")
    mdc_dimse_tls_cert: Path | None = Field(None, description="DICOM TLS certificate (PEM)")
    mdc_dimse_tls_key: Path | None = Field(None, description="DICOM TLS key (PEM)")
    mdc_dimse_tls_ca: Path | None = Field(None, description="if set, callers need a cert it signed")
    mdc_dimse_log: Path | None = Field(None, description="default $PACS_HOME/logs/scp.log")
    # Allow-list entries are `AE` (loopback peers only) or `AE@address` / `AE@network/prefix`;
    # a peer that is not on loopback must also come over TLS with a client certificate signed
    # by mdc_dimse_tls_ca (pacs_hdfs/dicom/config.py). The TLS listener runs when
    # mdc_dimse_tls_cert and _key are set.
    mdc_dimse_tls_bind: str = Field("127.0.0.1", description="DICOM TLS listen address")
    mdc_dimse_tls_port: int = Field(2762, description="DICOM TLS port (PS3.15 B.1: 2762)")
    mdc_dimse_audit_syslog: str = Field(
        "", description="also send the PS3.15 A.5 audit messages to syslog (RFC 5424): "
        "udp://host:port, tcp://host:port or unix:///dev/log; empty = audit trail only")

    @field_validator("mdc_dimse_tls_cert", "mdc_dimse_tls_key", "mdc_dimse_tls_ca",
                     "mdc_dimse_log", mode="before")
    @classmethod
    def _mdc_empty_path_is_none(cls, v):
        return v or None

    # --- MDC ingest ---------------------------------------------------------------------------
    # STOW-RS on the gateway (pacs_hdfs/dicom/stow.py): a request body past this -> 413.
    mdc_stow_max_bytes: int = Field(256 * 1024 * 1024, ge=1,
                                    description="STOW-RS request body limit in bytes")

    # --- hospital edge ----------------------------------------------------------------------
    # `pacs edge` (deid/edge/README.md): the hospital-side DICOM SCP that de-identifies, spools
    # durably under $PACS_HOME/hospital/edge/ and forwards to the MDC as STOW-RS over mTLS.
    edge_name: str = Field("edge1", description="this edge's identity (its client certificate)")
    edge_ae_title: str = Field("PACS", description="AE title modalities send to")
    edge_bind: str = Field("127.0.0.1", description="DICOM listen address")
    edge_port: int = Field(11112, description="DICOM port modalities send to")
    edge_allowed_aes: str = Field("", description="comma-separated calling AE titles; empty = any")
    edge_tls_cert: Path | None = Field(None, description="DICOM TLS server certificate (PEM)")
    edge_tls_key: Path | None = Field(None, description="DICOM TLS server key (PEM)")
    edge_tls_ca: Path | None = Field(None, description="if set, modalities need a cert it signed")
    edge_mdc_url: str = Field("https://127.0.0.1:8443", description="the MDC's STOW-RS base URL")
    edge_client_cert: Path | None = Field(
        None, description="forwarder's client certificate; default certs/edges/<edge_name>.pem")
    edge_client_key: Path | None = Field(
        None, description="forwarder's client key; default certs/edges/<edge_name>.key")
    edge_mdc_ca: Path | None = Field(None, description="CA of the MDC's server; default certs/ca.pem")
    edge_batch_objects: int = Field(64, ge=1, description="objects per STOW-RS request at most")
    edge_batch_bytes: int = Field(32 * 1024 * 1024, ge=1, description="bytes per request at most")
    edge_retry_max_seconds: float = Field(30.0, gt=0, description="backoff cap between retries")
    edge_review_bind: str = Field("127.0.0.1", description="review page listen address")
    edge_review_port: int = Field(8001, description="review page port (0 = no review page)")
    edge_workers: int | None = Field(
        None, ge=0, description="receive worker processes; 0 = in the SCP threads; "
        "default: 4 when there is more than one CPU, else 0")
    edge_log: Path | None = Field(None, description="default $PACS_HOME/logs/edge.log")

    @field_validator("edge_tls_cert", "edge_tls_key", "edge_tls_ca", "edge_client_cert",
                     "edge_client_key", "edge_mdc_ca", "edge_log", mode="before")
    @classmethod
    def _edge_empty_path_is_none(cls, v):
        return v or None
    # --- end of hospital edge ---------------------------------------------------------------

    # --- de-identification (hospital side: the edge and `pacs has`) -------------------------
    # One date policy for DICOM and visits: "shift" moves every date of a patient by one
    # per-patient offset (vault key date_shift, identity = PatientID / national id) on both
    # sides; "retain" keeps full dates on both sides.
    deid_date_policy: Literal["shift", "retain"] = Field(
        "shift", description="dates of DICOM objects and visits: shift (per patient) or retain")
    # --- DICOM de-identification profiles (deid/profiles.py) ---------------------------------
    # PS3.15 Annex E options per source, checked when the edge starts (docs/DEIDENTIFICATION.md).
    # deid_profile: option -> true/false (safe_private: [[creator, "0xNN"], ...]) for every
    # source; deid_profiles_by_ae: calling AE title -> overrides of that default. The two
    # longitudinal options follow deid_date_policy; a profile may only turn them off.
    deid_profile: dict[str, Any] = Field(
        default_factory=dict, description="de-identification options for every source")
    deid_profiles_by_ae: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="calling AE title -> option overrides")
    # --- end of DICOM de-identification profiles ---------------------------------------------
    # --- HL7 de-identification (hl7_gateway/hospital/) ---------------------------------------
    # Free text of visits (exam results) passes a PHI screen at the hospital before it is sent
    # (hl7_gateway/hospital/phi_screen.py): "redact" replaces what it finds by a typed
    # placeholder ([NAME], [PHONE], ...); "refuse" does not send that visit at all (`pacs has
    # sync` reports it, the link table keeps it as rejected with the categories found).
    hl7_phi_policy: Literal["redact", "refuse"] = Field(
        "redact", description="exam text with PHI: redact it, or refuse to send the visit")
    # The MDC gateway screens exam text again (patterns and names, no patient identifiers) and
    # answers AE PHI_TEXT_<CATEGORY> for a visit whose text it flags.
    hl7_gateway_text_screen: bool = Field(
        True, description="MDC gateway: refuse visits whose exam text the PHI screen flags")
    # --- end of HL7 de-identification --------------------------------------------------------
    # --- gateway identity (hl7_gateway/identity.py, hl7_gateway/README.md "Who may call") ---
    # Every gateway client (a hospital's HAS, a hospital edge) acts for one hospital id: its
    # certificate's CN in gateway_hospitals, else the id `pacs certs --hospital` wrote into the
    # certificate (subjectAltName URI urn:pacs-mdc:hospital:<id>) unless
    # gateway_certificate_hospitals is false. A certificate with neither is refused (403), as is
    # a revoked one: serial (hex) or SHA-256 fingerprint (64 hex digits) in gateway_revoked, or
    # listed by the CRL (gateway_crl, default <certs>/revoked.crl, which `pacs certs revoke`
    # writes; re-read when it changes). A hospital writes and reads only its own visit and
    # subject rows; rows written before rows recorded an owner belong to
    # gateway_unowned_rows_hospital ("" = to nobody). Its default is DEFAULT_HOSPITAL
    # (pacs_hdfs/dicom/edge_identity.py), the hospital `pacs certs init` issues for.
    gateway_hospitals: dict[str, str] = Field(
        default_factory=dict, description="client certificate CN -> hospital id")
    gateway_certificate_hospitals: bool = Field(
        True, description="accept the hospital id a certificate of our CA names")
    gateway_revoked: list[str] = Field(
        default_factory=list, description="refused client certificates: serials (hex) or "
        "SHA-256 fingerprints")
    gateway_crl: Path | None = Field(
        None, description="CRL of refused certificates; default <certs dir>/revoked.crl")
    gateway_unowned_rows_hospital: str = Field(
        "hospital1", description="owner of visit/subject rows stored before owners were "
        "recorded; empty = nobody")

    @field_validator("gateway_crl", mode="before")
    @classmethod
    def _gateway_empty_path_is_none(cls, v):
        return v or None
    # --- end of gateway identity -------------------------------------------------------------

    # --- portal security (portal/README.md "Security decisions") ----------------------------
    # Login throttle: failed attempts per scope in a sliding window, counted atomically in the
    # HBase `users` table (shared by every portal process); the password hash runs only for
    # attempts under every limit, and at most `portal_hash_concurrency` at once (argon2 takes
    # 64 MiB each), waiting up to `portal_hash_wait_seconds` for a turn, else 503.
    portal_login_window_seconds: int = Field(300, ge=1, description="throttle window")
    portal_login_max_user_ip: int = Field(5, ge=1, description="failures per user and address")
    portal_login_max_user: int = Field(20, ge=1, description="failures per user, any address")
    portal_login_max_ip: int = Field(30, ge=1, description="failures per address, any user")
    portal_hash_concurrency: int = Field(2, ge=1, description="password hashes at once")
    portal_hash_wait_seconds: float = Field(5.0, ge=0, description="wait for a hash slot")
    portal_session_idle_seconds: int = Field(1800, ge=60, description="idle session expiry")
    portal_session_max_seconds: int = Field(8 * 3600, ge=60, le=12 * 3600,
                                            description="absolute session expiry")
    portal_secret_file: Path | None = Field(
        None, description="HMAC key of the login CSRF tokens (created 0600 on first use); "
        "default $PACS_HOME/portal/secret.key; portals on several hosts share one file")
    # --- end of portal security --------------------------------------------------------------

    # --- portal CORS and the external viewer (portal/README.md "Viewer and DICOMweb") -------
    # Origins (scheme://host:port) whose pages may call /dicomweb from the browser, e.g. an OHIF
    # served on its own origin; empty = no CORS headers at all (same-origin only). Cookies are
    # never allowed cross-origin: such a viewer authenticates with a bearer token.
    portal_cors_origins: list[str] = Field(default_factory=list,
                                           description="origins allowed to call /dicomweb")
    portal_cors_max_age: int = Field(600, ge=0, description="preflight cache seconds")
    # The case page's "Open in viewer" link: a standard DICOMweb viewer (OHIF v3) URL; the
    # portal appends StudyInstanceUIDs and a study-scoped read token. Empty = no such link.
    portal_viewer_url: str = Field("", description="OHIF viewer URL, e.g. http://host:3000/viewer")
    # --- end of portal CORS and the external viewer -----------------------------------------

    @property
    def effective_replication(self) -> int:
        return self.replication or min(3, self.datanodes)

    @property
    def home_abs(self) -> Path:
        return self.home.resolve()

    def path(self, *parts: str) -> Path:
        """A path under $PACS_HOME."""
        return self.home_abs.joinpath(*parts)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("PACS_CONFIG", "pacs.toml")
        return (init_settings, env_settings,
                SectionedToml(settings_cls, toml_file=toml_file))


class SectionedToml(TomlConfigSettingsSource):
    """`pacs.toml` with a table per service: `[edge] port = 11112` is `edge_port = 11112`
    (and `PACS_EDGE_PORT`). Flat keys work too. A table whose name is itself a setting
    (`[heap_mb]`, `[gateway_hospitals]`) stays that setting's value."""

    def __call__(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        fields = self.settings_cls.model_fields
        for key, value in super().__call__().items():
            if isinstance(value, dict) and key not in fields:
                for sub, v in value.items():
                    name = f"{key}_{sub}"
                    if name not in fields:
                        raise ValueError(f"pacs.toml: [{key}] {sub} is not a setting "
                                         f"({name}); `pacs config show` lists them")
                    flat[name] = v
            else:
                flat[key] = value
        return flat


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

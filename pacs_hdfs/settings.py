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

from pydantic import Field
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
        "spark-worker": 128,
    })

    # --- services -------------------------------------------------------------------------
    scp_ae_title: str = "PACS"
    scp_port: int = 11112
    gateway_port: int = 8443
    portal_port: int = 8000

    # --- MDC ingest ---------------------------------------------------------------------------
    # STOW-RS on the gateway (pacs_hdfs/dicom/stow.py): a request body past this -> 413.
    mdc_stow_max_bytes: int = Field(256 * 1024 * 1024, ge=1,
                                    description="STOW-RS request body limit in bytes")

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
                TomlConfigSettingsSource(settings_cls, toml_file=toml_file))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

"""What a running job gets: settings, stores, a warm SparkSession, progress and artifact output."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from analytics_jobs.jobs import JobRecord, JobStore
from pacs_hdfs.hbase_store import HBaseStore
from pacs_hdfs.hdfs_store import HdfsStore
from pacs_hdfs.settings import Settings


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


@dataclass
class JobContext:
    record: JobRecord
    settings: Settings
    hdfs: HdfsStore
    hbase: HBaseStore
    store: JobStore
    spark_factory: object = None          # callable returning the runner's SparkSession
    _last_progress: float = field(default=0.0, repr=False)

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def spark(self):
        """The runner's SparkSession (warm, or on YARN this job's own application), with this
        job's job group set (for cancel) and its application id on the job record (for
        `pacs job status` and a kill through the ResourceManager)."""
        spark = self.spark_factory()
        sc = spark.sparkContext
        sc.setJobGroup(self.job_id, f"{self.record.kind} {self.job_id}", interruptOnCancel=True)
        if sc.applicationId and self.record.app_id != sc.applicationId:
            self.record.app_id = sc.applicationId
            self.store.update(self.record, "app_id")
        return spark

    @property
    def output_dir(self) -> str:
        """HDFS directory for this job's outputs (relative to the store root)."""
        return f"jobs/{self.job_id}"

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; raises JobCancelled if a cancel was requested."""
        self.record.progress = round(max(0.0, min(1.0, fraction)), 4)
        self.record.message = message
        now = time.monotonic()
        if now - self._last_progress > 0.3 or fraction >= 1.0:
            self.store.update(self.record, "progress", "message")
            self._last_progress = now
        self.check_cancel()

    def check_cancel(self) -> None:
        if self.store.cancel_requested(self.job_id):
            raise JobCancelled(self.job_id)

    def write_artifact(self, name: str, data: bytes) -> str:
        """Store a named output (chart, table, volume...) on HDFS and register it on the job."""
        path = self.hdfs.abs(f"{self.output_dir}/{name}")
        self.hdfs.write(path, data, overwrite=True)
        self.record.artifacts[name] = path
        self.store.update(self.record, "artifacts")
        return path

    def write_json(self, name: str, obj: object) -> str:
        return self.write_artifact(name, json.dumps(obj, indent=2, default=str).encode())

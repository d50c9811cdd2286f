"""What the portal holds for its lifetime: settings, the HBase store, users, throttle, jobs."""
from __future__ import annotations

from dataclasses import dataclass, field

from pacs_hdfs import audit
from portal.throttle import LoginThrottle
from portal.users import UserStore


@dataclass
class PortalState:
    settings: object
    store: object                      # HBaseStore (or portal.memstore.MemoryStore in tests)
    jobs: object                       # analytics_jobs.service.JobService (or a test double)
    secure_cookies: bool = False       # True when served over HTTPS
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    search: object = None              # portal.search.feed.LiveIndex, set by create_app

    def __post_init__(self):
        self.users = UserStore(self.store)

    def audit(self, user: str, action: str, target: str = "", **details) -> None:
        audit.record(self.settings, user, action, target, store=self.store, **details)

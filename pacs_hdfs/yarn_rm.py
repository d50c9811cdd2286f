"""The YARN ResourceManager's REST API, as much as we use: cluster state, queues, one
application's state, and kill (PUT /ws/v1/cluster/apps/{id}/state {"state": "KILLED"}).

Several RM URLs (an HA pair) are tried in turn; a standby RM answers its REST calls with a
redirect to the active one (or 503/307 while it fails over), so the first that answers with data
and says ACTIVE wins and is remembered.
"""
from __future__ import annotations

import threading

import requests

FINAL_STATES = ("FINISHED", "FAILED", "KILLED")


class YarnError(RuntimeError):
    """No ResourceManager answered, or it refused; the message names the URLs tried."""


class YarnRM:
    def __init__(self, urls: list[str], timeout: float = 10.0, user: str = ""):
        if not urls:
            raise YarnError("no ResourceManager URL configured (yarn_rm_url / yarn-site.xml)")
        self.urls = list(urls)
        self.timeout = timeout
        self.user = user
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, **kw) -> requests.Response:
        errors = []
        with self._lock:
            order = list(self.urls)
        params = dict(kw.pop("params", None) or {})
        if self.user:
            params.setdefault("user.name", self.user)
        for url in order:
            try:
                r = requests.request(method, f"{url}{path}", timeout=self.timeout,
                                     params=params, allow_redirects=False, **kw)
            except requests.RequestException as e:
                errors.append(f"{url}: {type(e).__name__}")
                continue
            if r.status_code in (301, 302, 307, 503) or "standby" in r.text[:300].lower():
                errors.append(f"{url}: standby ({r.status_code})")
                continue
            with self._lock:                      # remember the active one
                self.urls.remove(url)
                self.urls.insert(0, url)
            return r
        raise YarnError(f"no active ResourceManager answered {path}: {'; '.join(errors)}")

    def _json(self, path: str) -> dict:
        r = self._request("GET", path, headers={"Accept": "application/json"})
        if r.status_code == 404:
            raise YarnError(f"{path}: not found")
        r.raise_for_status()
        return r.json()

    def cluster_info(self) -> dict:
        return self._json("/ws/v1/cluster/info")["clusterInfo"]

    def metrics(self) -> dict:
        return self._json("/ws/v1/cluster/metrics")["clusterMetrics"]

    def app(self, app_id: str) -> dict:
        """The application's report: state, finalStatus, progress, trackingUrl, queue, ..."""
        return self._json(f"/ws/v1/cluster/apps/{app_id}")["app"]

    def kill(self, app_id: str) -> str:
        """Ask the RM to kill the application; returns the state it reports."""
        r = self._request("PUT", f"/ws/v1/cluster/apps/{app_id}/state",
                          json={"state": "KILLED"},
                          headers={"Accept": "application/json"})
        if r.status_code == 403:
            raise YarnError(f"kill {app_id}: refused (403): the RM's ACLs do not let "
                            f"'{self.user or 'dr.who'}' modify it")
        if r.status_code >= 400:
            raise YarnError(f"kill {app_id}: HTTP {r.status_code} {r.text[:200]}")
        try:
            return r.json().get("state", "")
        except ValueError:
            return ""

    def queues(self) -> dict[str, dict]:
        """Every queue of the scheduler by name (leaf and parent), with its state."""
        info = self._json("/ws/v1/cluster/scheduler")["scheduler"]["schedulerInfo"]
        out: dict[str, dict] = {}

        def walk(q: dict) -> None:
            name = q.get("queueName")
            if name:
                out[name] = q
                if q.get("queuePath"):
                    out[q["queuePath"]] = q
            children = (q.get("queues") or {}).get("queue") or []
            for child in children if isinstance(children, list) else [children]:
                walk(child)
        walk(info)
        if "queueName" not in info and info.get("type") == "fifoScheduler":
            out["default"] = {"queueName": "default", "state": info.get("qstate", "RUNNING")}
        return out

"""Real processes for the client tests: `tocsin serve`, Prometheus, Alertmanager; every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tocsin.testing import bearer

T = TypeVar("T")

ADMIN_TOKEN = "tocsin-clients-admin-token"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, log: Path | None = None) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            found = probe()
            last = f"last seen: {found!r}"[:500]
        except httpx.TransportError as exc:
            found, last = None, f"last error: {exc!r}"
        if found:
            return found
        if time.monotonic() > deadline:
            tail = "\n" + log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what} ({last}){tail}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


def spawn(
    args: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


class Tocsin:
    """A `python -m tocsin serve` subprocess on a free port with its own database; restartable."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir, self.database_url = workdir, database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"tocsin-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=self.url, headers=bearer(ADMIN_TOKEN), timeout=10)

    def start(self) -> None:
        env = {
            **os.environ,
            "TOCSIN_PORT": str(self.port),
            "TOCSIN_DATABASE_URL": self.database_url,
            "TOCSIN_BOOTSTRAP_TOKEN": ADMIN_TOKEN,
            "COLUMNS": "200",
        }
        proc = self.proc = spawn([sys.executable, "-m", "tocsin", "serve"], self.log, self.workdir, env)

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"tocsin serve exited with {proc.returncode}:\n{self.log.read_text()}")
            return httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200

        # Generous: on a busy 2-core machine a cold start (imports, migrations) can take several seconds.
        wait_for(healthy, 60, "tocsin serve to answer /api/health", self.log)

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no flush; what is not committed is gone."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def close(self) -> None:
        self.api.close()
        self.stop()

    def integration(self, kind: str, name: str | None = None) -> str:
        """Create an integration through the API; returns its secret key."""
        r = self.api.post("/api/v1/integrations", json={"name": name or f"{kind}-test", "kind": kind})
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key

    def incidents(self) -> list[dict[str, Any]]:
        r = self.api.get("/api/v1/incidents")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def incident(self, ref: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/incidents/{ref}")
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def alerts(self, status: str = "open", limit: int = 1000) -> list[dict[str, Any]]:
        r = self.api.get("/api/v1/alerts", params={"status": status, "limit": limit})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()
        return items

    def incident_alerts(self, ref: str) -> list[dict[str, Any]]:
        r = self.api.get(f"/api/v1/incidents/{ref}/alerts")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()
        return items


@contextmanager
def serving(workdir: Path, database_url: str) -> Iterator[Tocsin]:
    tocsin = Tocsin(workdir, database_url)
    try:
        tocsin.start()
        yield tocsin
    finally:
        tocsin.close()


@contextmanager
def prometheus(workdir: Path, alerting: dict[str, Any], name: str) -> Iterator[Path]:
    """Debian's Prometheus with one rule that fires at once (severity critical), resending every second."""
    port = free_port()
    home = workdir / f"prometheus-{port}"
    home.mkdir()
    rules = {
        "groups": [
            {
                "name": "clients",
                "interval": "1s",
                "rules": [
                    {
                        "alert": name,
                        "expr": "vector(1)",
                        "for": "0s",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": f"{name} fired", "description": "vector(1) always fires"},
                    }
                ],
            }
        ]
    }
    config = {
        "global": {"evaluation_interval": "1s", "scrape_interval": "1m"},
        "rule_files": [str(home / "rules.yml")],
        "alerting": {"alertmanagers": [alerting]},
    }
    write_yaml(home / "rules.yml", rules)
    write_yaml(home / "prometheus.yml", config)
    log = home / "prometheus.log"
    proc = spawn(
        [
            PROMETHEUS,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Without this the first notification comes only after the default one-minute resend delay:
            # Prometheus drops alerts that fire before it has discovered its Alertmanager.
            "--rules.alert.resend-delay=1s",
        ],
        log,
        home,
    )
    try:
        wait_for(
            lambda: (
                proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).is_success
            ),
            30,
            "Prometheus to be ready",
            log,
        )
        yield log
    finally:
        stop(proc)


class Alertmanager:
    """Debian's Alertmanager, clustering off, routing every alert to one webhook at once (group_wait 0s)."""

    def __init__(self, workdir: Path, webhook: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = workdir / f"alertmanager-{self.port}"
        self.home.mkdir()
        self.log = self.home / "alertmanager.log"
        config = {
            "route": {
                "receiver": "tocsin",
                "group_by": ["alertname"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "tocsin", "webhook_configs": [{"send_resolved": True, **webhook}]}],
        }
        write_yaml(self.home / "alertmanager.yml", config)
        self.proc = spawn(
            [
                ALERTMANAGER,
                f"--config.file={self.home / 'alertmanager.yml'}",
                f"--storage.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: an HA pair that does not know of each other
            ],
            self.log,
            self.home,
        )
        try:
            wait_for(
                lambda: self.proc.poll() is None and httpx.get(f"{self.url}/-/ready", timeout=1).is_success,
                30,
                "Alertmanager to be ready",
                self.log,
            )
        except BaseException:
            stop(self.proc)
            raise

    def post(self, alerts: list[dict[str, Any]]) -> None:
        r = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        assert r.status_code == 200, r.text

    def close(self) -> None:
        stop(self.proc)


def write_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@contextmanager
def tls_proxy(workdir: Path, upstream: str) -> Iterator[tuple[str, Path]]:
    """Debian's nginx terminating TLS in front of `upstream`, as Tocsin is deployed; yields (https URL, CA file).

    The certificate is self-signed for 127.0.0.1, made with the openssl command for this run only.
    """
    port = free_port()
    home = workdir / f"nginx-{port}"
    home.mkdir()
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp dirs below
    (home / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {home}/body;
  proxy_temp_path {home}/proxy;
  fastcgi_temp_path {home}/fastcgi;
  uwsgi_temp_path {home}/uwsgi;
  scgi_temp_path {home}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
    }}
  }}
}}
"""
    )
    log = home / "nginx.log"
    proc = spawn([NGINX, "-p", str(home), "-c", str(home / "nginx.conf")], log, home)
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        wait_for(
            lambda: (
                proc.poll() is None and httpx.get(f"{url}/api/health", verify=trust, timeout=1).is_success
            ),
            30,
            "nginx to proxy /api/health over TLS",
            home / "error.log",
        )
        yield url, cert
    finally:
        stop(proc)

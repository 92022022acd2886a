"""A polite HTTP client for Wikimedia: who we are, how long we wait, what we refuse to download.

Etiquette: a User-Agent with a contact e-mail, maxlag on every API request, Retry-After
honoured (seconds, float or HTTP date) on maxlag / 429 / 5xx, otherwise exponential backoff
with a cap and a retry limit; gzip; one keep-alive session per thread. How many requests run
at once is the caller's choice (the scraper: API calls serial, at most 2 downloads).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from pddlib import __version__
from pddlib.data.mediawiki import DEFAULT_API
from pddlib.data.scrapeconfig import ScrapeConfig, check_email


class Retry(Exception):
    """A download went wrong in a way that may not happen again (truncated, corrupt)."""


class Refuse(Exception):
    """A download is not acceptable and retrying will not change that (MIME, size)."""


def user_agent(email: str) -> str:
    """The User-Agent Wikimedia's policy asks for: client/version (contact) library/version."""
    return f"pddlib/{__version__} ({check_email(email)}) requests/{requests.__version__}"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse Retry-After: delta seconds ("5", "0.5") or an HTTP date; None when absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base * 2**attempt, capped."""
    return min(cap, base * 2.0 ** attempt)


class Client:
    """HTTP for one scrape: Action API queries and size-capped downloads, retried politely."""

    def __init__(self, cfg: ScrapeConfig, sleep: Callable[[float], None]) -> None:
        self.cfg, self.sleep = cfg, sleep
        self.headers = {"User-Agent": user_agent(cfg.email), "Accept-Encoding": "gzip"}
        self._local = threading.local()

    def session(self) -> requests.Session:
        """One keep-alive session per thread (requests sessions are not shared across threads)."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers.update(self.headers)
        return self._local.session

    def _wait(self, attempt: int, response: requests.Response | None, what: str) -> None:
        """Sleep before retry `attempt` as the server asks, else back off; give up at the limit."""
        cfg = self.cfg
        if attempt >= cfg.max_retries:
            raise RuntimeError(f"{what} still failing after {cfg.max_retries} retries; "
                               "Commons may be overloaded: try again later.")
        hint = (None if response is None  # (a 4xx/5xx Response is falsy)
                else retry_after_seconds(response.headers.get("Retry-After")))
        wait = backoff_seconds(attempt, cfg.backoff_base, cfg.backoff_cap) if hint is None else hint
        if wait > cfg.max_wait:
            raise RuntimeError(f"{what}: server asks to wait {wait:.0f} s; try again later.")
        self.sleep(wait)

    def get(self, url: str, params: dict[str, str] | None = None, stream: bool = False,
            what: str = "request") -> requests.Response:
        """GET with retries on network errors, 429 and 5xx (honouring Retry-After)."""
        for attempt in range(self.cfg.max_retries + 1):
            try:
                r = self.session().get(url, params=params, stream=stream, timeout=self.cfg.timeout)
            except (requests.ConnectionError, requests.Timeout):
                self._wait(attempt, None, what)
                continue
            if r.status_code == 429 or r.status_code >= 500:
                r.close()
                self._wait(attempt, r, what)
                continue
            return r
        raise AssertionError("unreachable")

    def api(self, params: dict[str, str]) -> dict:
        """One Action API request (maxlag set), retried on maxlag errors; returns the JSON."""
        full = {"action": "query", "format": "json", "formatversion": "2",
                "maxlag": str(self.cfg.maxlag), **params}
        for attempt in range(self.cfg.max_retries + 1):
            r = self.get(self.cfg.api, full, what="Commons API")
            if r.status_code != 200:
                raise RuntimeError(f"Commons API answered HTTP {r.status_code} for {params}")
            try:
                data = r.json()
            except ValueError:  # an HTML error page from a proxy: transient
                self._wait(attempt, r, "Commons API (answer is not JSON)")
                continue
            error = data.get("error")
            if error and error.get("code") in ("maxlag", "ratelimited"):
                self._wait(attempt, r, "Commons API (replication lag)")
                continue
            if error:
                raise RuntimeError(f"Commons API error {error.get('code')}: {error.get('info')}")
            return data
        raise AssertionError("unreachable")

    def fetch(self, url: str, accept: frozenset[str]) -> tuple[bytes, str]:
        """Download one file of an `accept`ed type into memory (size-capped): (bytes, type)."""
        try:
            with self.get(url, stream=True, what=f"download {url}") as r:
                if r.status_code != 200:
                    raise Retry(f"http {r.status_code}")
                ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype not in accept:
                    raise Refuse(f"mime not allowed: served as {ctype or 'nothing'}")
                buf = bytearray()
                for chunk in r.iter_content(1 << 16):
                    buf += chunk
                    if len(buf) > self.cfg.max_bytes:
                        raise Refuse(f"oversized: more than {self.cfg.max_bytes} bytes")
                return bytes(buf), ctype
        except (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError, requests.ConnectionError) as e:
            raise Retry(f"truncated download: {type(e).__name__}") from e
        except RuntimeError as e:  # retries exhausted on 429/5xx
            raise Retry(str(e)) from e


def can_reach(url: str = DEFAULT_API, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the URL's host opens (no HTTP request is sent)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = [
    "Client", "Refuse", "Retry", "backoff_seconds", "can_reach", "retry_after_seconds",
    "user_agent",
]

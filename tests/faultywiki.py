"""The demo wiki with test-only machinery: scripted faults, a request log, bad downloads.

`FaultyCommons` is pddlib's LocalCommons (a real HTTP server on 127.0.0.1) that also answers
scripted failures (`Fault`: 429, 503, maxlag ...), logs every request, counts concurrent image
downloads, and serves files that misbehave (`FaultyFile`: a replacement thumbnail, or a body
cut off halfway).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pddlib.data.demowiki import PD_META, Handler, LocalCommons, Reply, WikiFile

__all__ = ["PD_META", "Fault", "FaultyCommons", "FaultyFile", "Request"]


@dataclass
class FaultyFile(WikiFile):
    """A file page whose download misbehaves."""

    thumb: bytes | None = None     # served instead of a real thumbnail or original
    truncate: bool = False         # announce the full length, send half, hang up


@dataclass
class Fault:
    """A scripted failure: answer the next `times` matching requests of `kind` with this."""

    kind: str                      # "api" or "image"
    status: int = 503
    body: bytes | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    when: Callable[[dict[str, str]], bool] | None = None  # matched against the query params


@dataclass
class Request:
    """What the server saw: kind, path, query params and headers."""

    kind: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class TruncatedReply(Reply):
    """A reply whose body is cut off halfway, the connection then closed."""


class TruncatingHandler(Handler):
    """Writes half the body of a TruncatedReply, then hangs up."""

    def send(self, reply: Reply) -> None:
        data = self.encode(reply)
        if isinstance(reply, TruncatedReply):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


class FaultyCommons(LocalCommons):
    """LocalCommons plus faults, a request log and a concurrency count."""

    handler = TruncatingHandler

    def __init__(self, files: list[WikiFile], categories: dict[str, list[str]], **kw) -> None:
        super().__init__(files, categories, **kw)
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self.max_concurrent_images = 0
        self._active = 0
        self._count = threading.Lock()

    def requests_of(self, kind: str) -> list[Request]:
        """The logged requests of one kind ("api" or "image")."""
        return [r for r in self.log if r.kind == kind]

    def respond(self, kind: str, path: str, params: dict[str, str],
                headers: dict[str, str]) -> Reply:
        with self._count:
            self.log.append(Request(kind, path, params, headers))
            fault = next((f for f in self.faults if f.kind == kind and f.times > 0
                          and (f.when is None or f.when(params))), None)
            if fault:
                fault.times -= 1
        if fault:
            body = fault.body
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            return Reply(fault.status, data, "application/json", fault.headers)
        if kind == "api":
            return super().respond(kind, path, params, headers)
        with self._count:
            self._active += 1
            self.max_concurrent_images = max(self.max_concurrent_images, self._active)
        try:
            reply = super().respond(kind, path, params, headers)
        finally:
            with self._count:
                self._active -= 1
        f = self.file_at(path)
        if isinstance(f, FaultyFile) and f.thumb is not None:
            sniffed = "image/png" if f.thumb[:4] == b"\x89PNG" else "image/jpeg"
            reply = Reply(200, f.thumb, reply.ctype if "/orig/" in path else sniffed)
        if isinstance(f, FaultyFile) and f.truncate:
            reply = TruncatedReply(reply.status, reply.data, reply.ctype, reply.headers)
        return reply

"""A small local stand-in for the Wikimedia Commons Action API: notebook 01's offline wiki.

It speaks enough of the real protocol for `pddlib.data.commons` to run unchanged against it:
`action=query` with `generator=categorymembers` + `prop=imageinfo|categories` (formatversion=2,
thumbnails capped per request so `iicontinue` appears, categories paged with `clcontinue`,
pages shuffled as on Commons), `list=categorymembers` for subcategories, gzip, thumbnails at
`thumburl`. It binds 127.0.0.1 only; nothing here touches the internet. The tests' version,
which also scripts failures (429, 503, truncated bodies), lives in tests/faultywiki.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass
class WikiFile:
    """One file page: original bytes, licence metadata (plain field -> HTML value), categories."""

    title: str
    image: bytes
    extmetadata: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    mime: str = "image/jpeg"
    missing: bool = False          # listed in a category but the page is gone
    sha1: str | None = None        # reported sha1 (default: the real one of `image`)


@dataclass
class Reply:
    """One HTTP answer: status, body, content type, extra headers."""

    status: int
    data: bytes
    ctype: str
    headers: dict[str, str] = field(default_factory=dict)


class Handler(BaseHTTPRequestHandler):
    """Hands each GET to the wiki's `respond` and writes the reply (gzip when asked)."""

    protocol_version = "HTTP/1.1"
    wiki: LocalCommons

    def log_message(self, *args: object) -> None:  # keep notebook and test output quiet
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        kind = "api" if url.path == "/w/api.php" else "image"
        self.send(self.wiki.respond(kind, url.path, params, dict(self.headers.items())))

    def send(self, reply: Reply) -> None:
        """Write one reply."""
        self.wfile.write(self.encode(reply))

    def encode(self, reply: Reply) -> bytes:
        """Send the status and headers; return the (maybe gzipped) body still to write."""
        data = reply.data
        gz = "gzip" in self.headers.get("Accept-Encoding", "")
        if gz:
            data = gzip.compress(data, mtime=0)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.ctype)
        self.send_header("Content-Length", str(len(data)))
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        return data


class LocalCommons:
    """A threaded HTTP server on 127.0.0.1 that answers like commons.wikimedia.org/w/api.php."""

    handler: type[Handler] = Handler  # subclasses (the tests') may write replies differently

    def __init__(
        self,
        files: list[WikiFile],
        categories: dict[str, list[str]],
        *,
        thumb_cap: int = 50,
        cl_cap: int = 500,
        subcat_cap: int = 500,
        image_delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.files = {f.title: f for f in files}
        self.pageids = {f.title: 1000 + i for i, f in enumerate(files)}
        self.categories = categories
        self.thumb_cap, self.cl_cap, self.subcat_cap = thumb_cap, cl_cap, subcat_cap
        self.image_delay = image_delay
        self.seed = seed
        self.served = 0  # answers given; reshuffles page order between calls
        self._lock = threading.Lock()
        self._thumbs: dict[tuple[str, int], bytes] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LocalCommons:
        """Start serving in a daemon thread on a free port of 127.0.0.1."""
        handler = type("Handler", (self.handler,), {"wiki": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop the server and release its port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalCommons:  # noqa: PYI034 (py3.10 has no typing.Self)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        """Root URL, e.g. http://127.0.0.1:PORT."""
        assert self._server is not None, "call start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """The Action API endpoint (what `pddlib scrape --api` takes)."""
        return f"{self.base}/w/api.php"

    def respond(self, kind: str, path: str, params: dict[str, str],
                headers: dict[str, str]) -> Reply:
        """The answer to one GET: an API query ("api") or an image file ("image")."""
        with self._lock:
            self.served += 1
        if kind == "api":
            return Reply(200, json.dumps(self.answer(params)).encode(),
                         "application/json; charset=utf-8")
        time.sleep(self.image_delay)  # a slow network: concurrent downloads overlap
        f, data = self.image_bytes(path)
        mime = f.mime if f.mime.startswith("image/") and "/orig/" in path else (
            "image/png" if data[:4] == b"\x89PNG" else "image/jpeg")
        return Reply(200, data, mime)

    # -- API answers -----------------------------------------------------------------------
    def answer(self, params: dict[str, str]) -> dict:
        """Answer one Action API query the way MediaWiki does (formatversion=2)."""
        if params.get("action") != "query":
            return {"error": {"code": "badvalue", "info": "only action=query is served here"}}
        if params.get("generator") == "categorymembers":
            return self._generator(params)
        if params.get("list") == "categorymembers":
            return self._subcats(params)
        return {"error": {"code": "badvalue", "info": "unsupported query"}}

    def _members(self, title: str, prefix: str) -> list[str]:
        name = title.removeprefix("Category:")
        return sorted(m for m in self.categories.get(name, []) if m.startswith(prefix))

    def _subcats(self, params: dict[str, str]) -> dict:
        members = self._members(params.get("cmtitle", ""), "Category:")
        start = int(params.get("cmcontinue", "subcat|0").rsplit("|", 1)[1])
        chunk = members[start:start + self.subcat_cap]
        out: dict = {"batchcomplete": True, "query": {"categorymembers": [
            {"pageid": 5000 + start + i, "ns": 14, "title": t} for i, t in enumerate(chunk)]}}
        if start + self.subcat_cap < len(members):
            out["continue"] = {"cmcontinue": f"subcat|{start + self.subcat_cap}",
                               "continue": "-||"}
        return out

    def _imageinfo(self, f: WikiFile, width: int) -> dict:
        img = Image.open(io.BytesIO(f.image)) if f.mime.startswith("image/") else None
        w, h = img.size if img else (600, 800)
        pid = self.pageids[f.title]
        name = f.title.removeprefix("File:")
        url = f"{self.base}/orig/{pid}/{quote(name, safe='')}"
        info = {
            "size": len(f.image), "width": w, "height": h, "url": url,
            "descriptionurl": f"{self.base}/wiki/{quote(f.title.replace(' ', '_'), safe=':/')}",
            "descriptionshorturl": f"{self.base}/w/index.php?curid={pid}",
            "mime": f.mime, "sha1": f.sha1 or hashlib.sha1(f.image).hexdigest(),
            "extmetadata": {k: {"value": v, "source": "commons-desc-page"}
                            for k, v in f.extmetadata.items()},
        }
        if width:
            tw = min(width, w)
            th = h if tw == w else max(1, round(h * tw / w))
            thumb = url if tw == w else f"{self.base}/thumb/{pid}/{tw}px-{quote(name, safe='')}"
            info.update(thumburl=thumb, thumbwidth=tw, thumbheight=th)
        return info

    def _generator(self, params: dict[str, str]) -> dict:
        members = self._members(params.get("gcmtitle", ""), "File:")
        limit = int(params.get("gcmlimit", "10"))
        start = int(params.get("gcmcontinue", "file|0").rsplit("|", 1)[1])
        batch = members[start:start + limit]
        done = params.get("continue", "").partition("||")[2].split("|")
        props = params.get("prop", "").split("|")
        width = int(params.get("iiurlwidth", "0"))
        pages = {t: self._page(t) for t in batch}
        ii_more = cl_more = None
        if "imageinfo" in props and "imageinfo" not in done:
            live = [t for t in batch if not self.files[t].missing]
            first = params.get("iicontinue", "").split("|")[0]
            i0 = next((i for i, t in enumerate(live) if t.removeprefix("File:") == first), 0)
            for t in live[i0:i0 + self.thumb_cap]:  # thumbnails are capped per request
                pages[t]["imageinfo"] = [self._imageinfo(self.files[t], width)]
            if i0 + self.thumb_cap < len(live):
                ii_more = f"{live[i0 + self.thumb_cap].removeprefix('File:')}|20240101000000"
        if "categories" in props and "categories" not in done:
            rows = sorted((self.pageids[t], c) for t in batch if not self.files[t].missing
                          for c in self.files[t].categories)
            key = params.get("clcontinue")
            if key:
                pid, cat = key.split("|", 1)
                rows = [r for r in rows if (r[0], r[1]) >= (int(pid), cat)]
            by_id = {self.pageids[t]: t for t in batch}
            for pid, cat in rows[:self.cl_cap]:
                pages[by_id[pid]].setdefault("categories", []).append(
                    {"ns": 14, "title": f"Category:{cat}"})
            if len(rows) > self.cl_cap:
                pid, cat = rows[self.cl_cap]
                cl_more = f"{pid}|{cat}"
        page_list = list(pages.values())
        random.Random(self.seed + start + self.served).shuffle(page_list)  # order means nothing
        out: dict = {"query": {"pages": page_list}}
        if ii_more or cl_more:
            finished = [m for m, more in (("imageinfo", ii_more), ("categories", cl_more))
                        if not more and m in props]
            cont = {"continue": "gcmcontinue||" + "|".join(finished)}
            if start:
                cont["gcmcontinue"] = params["gcmcontinue"]
            if ii_more:
                cont["iicontinue"] = ii_more
            if cl_more:
                cont["clcontinue"] = cl_more
            out["continue"] = cont
        else:
            out["batchcomplete"] = True
            if start + limit < len(members):
                out["continue"] = {"gcmcontinue": f"file|{start + limit:x}|{start + limit}",
                                   "continue": "gcmcontinue||"}
        return out

    def _page(self, title: str) -> dict:
        f = self.files[title]
        if f.missing:
            return {"ns": 6, "title": title, "missing": True}
        return {"pageid": self.pageids[title], "ns": 6, "title": title,
                "imagerepository": "local"}

    # -- images ----------------------------------------------------------------------------
    def file_at(self, path: str) -> WikiFile:
        """The file an image URL (/orig/<pageid>/... or /thumb/<pageid>/...) belongs to."""
        pid = int(path.split("/", 3)[2])
        return next(f for t, f in self.files.items() if self.pageids[t] == pid)

    def image_bytes(self, path: str) -> tuple[WikiFile, bytes]:
        """Return (file, bytes) for /orig/<pageid>/<name> or /thumb/<pageid>/<W>px-<name>."""
        parts = path.split("/", 3)
        f = self.file_at(path)
        if parts[1] == "orig":
            return f, f.image
        width = int(parts[3].split("px-", 1)[0])
        key = (f.title, width)
        if key not in self._thumbs:
            img = Image.open(io.BytesIO(f.image))
            exif = img.info.get("exif")
            fmt = img.format or "JPEG"
            thumb = img.resize((width, max(1, round(img.height * width / img.width))))
            buf = io.BytesIO()
            thumb.save(buf, fmt, **({"exif": exif} if exif else {}))  # keep EXIF like originals
            self._thumbs[key] = buf.getvalue()
        return f, self._thumbs[key]


# -- the demo wiki used by notebook 01 ------------------------------------------------------
PD_META = {
    "License": "pd", "LicenseShortName": "Public domain", "Copyrighted": "False",
    "UsageTerms": "Public domain", "AttributionRequired": "false", "Restrictions": "",
    "LicenseUrl": "",
}
ROOT = "PD-Art (PD-old-100)"
DEMO_LABELS = {
    "Landscape paintings (demo)": "landscape", "Portrait paintings (demo)": "portrait",
    "Marine paintings (demo)": "marine", "Still life paintings (demo)": "still life",
}


def paint(kind: str, seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """Paint a synthetic stand-in 'old painting' of a kind (landscape, portrait, marine, ...)."""
    rng = np.random.default_rng(seed)
    w, h = size

    def c(lo: int, hi: int) -> tuple[int, ...]:
        """A random colour, each channel in [lo, hi)."""
        return tuple(int(v) for v in rng.integers(lo, hi, 3))

    img = Image.new("RGB", size, c(120, 220))
    d = ImageDraw.Draw(img)
    if kind in ("landscape", "marine"):
        horizon = int(h * rng.uniform(0.35, 0.6))
        sky, ground = c(140, 235), (c(20, 110) if kind == "landscape" else c(20, 90))
        for y in range(horizon):  # sky gradient
            t = y / horizon
            d.line([(0, y), (w, y)], fill=tuple(int(s * (1 - 0.3 * t)) for s in sky))
        d.rectangle([0, horizon, w, h], fill=ground)
        if kind == "landscape":
            for _ in range(3):
                x0 = rng.integers(-w // 2, w)
                d.polygon([(x0, horizon), (x0 + rng.integers(80, w), horizon),
                           (x0 + rng.integers(40, 200), horizon - rng.integers(30, h // 3))],
                          fill=c(30, 120))
        else:
            for _ in range(int(rng.integers(1, 4))):
                x, y = int(rng.integers(40, w - 80)), horizon + int(rng.integers(5, 40))
                d.polygon([(x, y), (x + 60, y), (x + 50, y + 14), (x + 10, y + 14)], fill=c(40, 90))
                d.polygon([(x + 30, y), (x + 30, y - 70), (x + 65, y - 5)], fill=c(200, 250))
        r = int(rng.integers(15, 35))
        sx, sy = int(rng.integers(r, w - r)), int(rng.integers(r, max(r + 1, horizon - r)))
        d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=c(220, 256))
    elif kind == "portrait":
        bg0, bg1 = np.array(c(10, 90)), np.array(c(10, 90))
        for x in range(w):  # a background lit from a random side
            t = x / w
            d.line([(x, 0), (x, h)], fill=tuple(int(v) for v in bg0 * (1 - t) + bg1 * t))
        for _ in range(int(rng.integers(2, 6))):  # curtain folds, a window, a chair back
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            d.rectangle([x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(40, h))],
                        fill=c(10, 160))
        cx = int(rng.integers(w // 4, 3 * w // 4))
        r = int(rng.integers(35, 70))
        cy = int(h * rng.uniform(0.25, 0.45))
        d.ellipse([cx - 2 * r, cy + r, cx + 2 * r, h + 2 * r], fill=c(20, 140))
        d.ellipse([cx - r, cy - int(1.3 * r), cx + r, cy + int(1.3 * r)], fill=c(170, 240))
        d.ellipse([cx - r - 5, cy - int(1.5 * r), cx + r + 5, cy - int(0.5 * r)], fill=c(20, 100))
    else:  # still life
        table = int(h * rng.uniform(0.55, 0.7))
        d.rectangle([0, 0, w, table], fill=c(30, 90))
        d.rectangle([0, table, w, h], fill=c(80, 160))
        for _ in range(int(rng.integers(3, 6))):
            r = int(rng.integers(18, 40))
            x = int(rng.integers(r, w - r))
            d.ellipse([x - r, table - r, x + r, table + r // 2], fill=c(120, 256))
        vx = int(rng.integers(60, w - 60))
        d.rectangle([vx - 25, table - 130, vx + 25, table], fill=c(60, 200))
    return img.filter(ImageFilter.GaussianBlur(1.2))


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def demo_wiki(image_delay: float = 0.0) -> LocalCommons:
    """A small demo wiki: a PD-Art category, four genre subcategories (one loops back) and
    a realistic mix of acceptable and unacceptable files. Images are synthetic stand-ins."""
    artists = ["Anna Lindqvist (1821&ndash;1890)", "Pieter de Wael (1788&ndash;1851)",
               "Hermine Achter (1802&ndash;1879)", "Tomas Vrba (1795&ndash;1866)"]
    files: list[WikiFile] = []
    cats: dict[str, list[str]] = {ROOT: [f"Category:{c}" for c in DEMO_LABELS]}
    seed = 0
    for (cat, kind), artist in zip(DEMO_LABELS.items(), artists, strict=True):
        cats[cat] = []
        for i in range(4):
            seed += 1
            title = f"File:{artist.split(' (')[0]} - {kind.title()} {i + 1}.jpg"
            meta = dict(PD_META, Artist=f'<a href="/wiki/Creator:X" class="new">{artist}</a>',
                        ObjectName=f"{kind.title()} {i + 1}")
            files.append(WikiFile(title, _jpeg(paint(kind, seed)), meta,
                                  [ROOT, "PD-old-100-expired", cat]))
            cats[cat].append(title)
    cats["Marine paintings (demo)"].append(f"Category:{ROOT}")  # a loop, as on Commons
    bad = [
        ("File:Framed landscape, museum photo.jpg", "landscape",
         {"License": "cc-by-sa-4.0", "LicenseShortName": "CC BY-SA 4.0", "Copyrighted": "True",
          "AttributionRequired": "true",
          "LicenseUrl": "https://creativecommons.org/licenses/by-sa/4.0"},
         [ROOT, "CC-BY-SA-4.0"], "Landscape paintings (demo)"),
        ("File:Sitter in a garden, 2019 photo.jpg", "portrait",
         dict(PD_META, Restrictions="personality"), ["PD-self"], "Portrait paintings (demo)"),
        ("File:Harbour company logo.jpg", "marine",
         {"License": "", "LicenseShortName": "Fair use", "NonFree": "true"},
         ["Non-free logos"], "Marine paintings (demo)"),
        ("File:Still life, source unknown.jpg", "still life", {"Artist": "unknown"},
         [ROOT], "Still life paintings (demo)"),
        ("File:Still life, own work CC0.jpg", "still life",
         {"License": "cc0", "LicenseShortName": "CC0", "Copyrighted": "True",
          "AttributionRequired": "false",
          "LicenseUrl": "http://creativecommons.org/publicdomain/zero/1.0/deed.en"},
         ["CC-Zero"], "Still life paintings (demo)"),
    ]
    for title, kind, meta, fcats, cat in bad:
        seed += 1
        files.append(WikiFile(title, _jpeg(paint(kind, seed)), meta, fcats))
        cats[cat].append(title)
    # A second scan of an accepted painting: other bytes (sha1), same picture (perceptual hash).
    first = files[0]
    rescan = Image.open(io.BytesIO(first.image)).point(lambda v: min(255, int(v * 1.04) + 3))
    # Its title sorts after the original's, so the scraper keeps the original and skips the scan.
    files.append(WikiFile(first.title.replace("File:", "File:Second scan of "), _jpeg(rescan),
                          dict(first.extmetadata), list(first.categories)))
    cats["Landscape paintings (demo)"].append(files[-1].title)
    pdf = WikiFile("File:Catalogue of paintings (1850).pdf", b"%PDF-1.4 demo\n%%EOF\n",
                   dict(PD_META), [ROOT], mime="application/pdf")
    files.append(pdf)
    cats[ROOT].append(pdf.title)
    return LocalCommons(files, cats, image_delay=image_delay)

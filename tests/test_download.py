"The UCI download against a real HTTP server on 127.0.0.1 serving archives built from the local copy."
import hashlib
import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wine_nb.data import (
    CSV_NAMES,
    CSV_SHA256,
    DATA_ENV,
    DataUnavailableError,
    WineDataError,
    download_uci,
    file_sha256,
    load_wine,
    wine_data_dir,
)


class ArchiveServer:
    "A loopback HTTP server answering GET /<name> with the bytes registered under that name, counting requests."
    def __init__(self):
        self.files, self.hits = {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if body: self.wfile.write(body)

            def log_message(self, *args): pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name): return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def __enter__(self): self.thread.start(); return self

    def __exit__(self, *exc): self.httpd.shutdown(); self.httpd.server_close()


def make_zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items(): zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def uci_members(data_dir):
    "The members of the real UCI archive: both CSVs (from the local copy) and the description."
    members = {name: (data_dir/name).read_bytes() for name in CSV_NAMES.values()}
    assert {n: hashlib.sha256(b).hexdigest() for n, b in members.items()} == CSV_SHA256
    return {**members, "winequality.names": b"Citation Request: P. Cortez et al. 2009\n"}


@pytest.fixture
def server():
    with ArchiveServer() as s: yield s


def test_good_archive_is_verified_and_cached(tmp_path, server, uci_members):
    server.files["wine.zip"] = make_zip(uci_members)
    cache = tmp_path/"cache"
    assert download_uci(cache, url=server.url("wine.zip")) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(CSV_NAMES.values())
    assert {p.name: file_sha256(p) for p in cache.iterdir()} == CSV_SHA256


def test_members_in_a_subfolder_are_found(tmp_path, server, uci_members):
    server.files["wine.zip"] = make_zip({f"wine+quality/{n}": b for n, b in uci_members.items()})
    download_uci(tmp_path/"cache", url=server.url("wine.zip"))
    assert sorted(p.name for p in (tmp_path/"cache").iterdir()) == sorted(CSV_NAMES.values())


def test_corrupted_archive_leaves_nothing(tmp_path, server, uci_members):
    good = make_zip(uci_members)
    server.files["wine.zip"] = good[: len(good) // 2] + bytes(100)
    with pytest.raises(WineDataError, match="corrupted"):
        download_uci(tmp_path/"cache", url=server.url("wine.zip"))
    assert list((tmp_path/"cache").iterdir()) == []


def test_wrong_checksum_leaves_nothing(tmp_path, server, uci_members):
    tampered = dict(uci_members)
    tampered["winequality-white.csv"] = tampered["winequality-white.csv"].replace(b"9.4", b"9.5", 1)
    server.files["wine.zip"] = make_zip(tampered)
    with pytest.raises(WineDataError, match=re.escape("checksum mismatch for winequality-white.csv")):
        download_uci(tmp_path/"cache", url=server.url("wine.zip"))
    assert list((tmp_path/"cache").iterdir()) == []


def test_archive_without_the_csvs_leaves_nothing(tmp_path, server):
    server.files["wine.zip"] = make_zip({"README.txt": b"nothing here"})
    with pytest.raises(WineDataError, match=re.escape("the archive has no winequality-red.csv")):
        download_uci(tmp_path/"cache", url=server.url("wine.zip"))
    assert list((tmp_path/"cache").iterdir()) == []


def test_http_error_says_how_to_use_a_local_copy(tmp_path, server):
    with pytest.raises(DataUnavailableError, match=DATA_ENV) as error:
        download_uci(tmp_path/"cache", url=server.url("missing.zip"))
    assert "Not Found" in str(error.value)
    assert list((tmp_path/"cache").iterdir()) == []


def test_no_network_says_how_to_use_a_local_copy(tmp_path):
    with ArchiveServer() as s: url = s.url("wine.zip")  # the port is closed once the server stops
    with pytest.raises(DataUnavailableError, match=f"pass data_dir=... or set {DATA_ENV}"):
        download_uci(tmp_path/"cache", url=url, timeout=5)
    assert list((tmp_path/"cache").iterdir()) == []


def test_wine_data_dir_downloads_once_then_uses_the_cache(tmp_path, server, uci_members, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    server.files["wine.zip"] = make_zip(uci_members)
    cache = tmp_path/"cache"
    assert wine_data_dir(cache_dir=cache, url=server.url("wine.zip")) == cache
    assert wine_data_dir(cache_dir=cache, url=server.url("wine.zip")) == cache
    assert server.hits == ["/wine.zip"]
    (cache/"winequality-red.csv").write_bytes(b"damaged")
    wine_data_dir(cache_dir=cache, url=server.url("wine.zip"))
    assert server.hits == ["/wine.zip", "/wine.zip"]
    assert file_sha256(cache/"winequality-red.csv") == CSV_SHA256["winequality-red.csv"]


def test_load_wine_reads_the_cache_when_no_local_copy_is_given(tmp_path, server, uci_members, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    server.files["wine.zip"] = make_zip(uci_members)
    download_uci(tmp_path/"cache", url=server.url("wine.zip"))  # the conftest points WINE_NB_CACHE_DIR here
    wines = load_wine("both")
    assert len(wines) == 1599 + 4898
    assert wines.attrs["sha256"] == CSV_SHA256


def test_local_folder_from_argument_or_environment(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(data_dir))
    assert wine_data_dir() == data_dir
    assert wine_data_dir(tmp_path) == tmp_path
    with pytest.raises(DataUnavailableError, match="does not exist"):
        wine_data_dir(tmp_path/"nope")

import hashlib
import logging
import socket

import pytest

from sae.data import download
from sae.data.download import RemoteFile, copy_verified, fetch, md5sum
from sae.base.errors import DataError

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def no_sleep(monkeypatch):
    """Record backoff sleeps instead of waiting."""
    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    return sleeps


def _serve(server, name="blob.bin", data=PAYLOAD):
    (server.root / name).write_bytes(data)
    return f"{server.url}/{name}"


def test_md5sum(tmp_path):
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert md5sum(tmp_path / "f") == MD5


def test_fetch_good_file(http_server, tmp_path):
    url = _serve(http_server)
    out = fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path / "dl")
    assert out == tmp_path / "dl" / "blob.bin" and out.read_bytes() == PAYLOAD
    assert not (tmp_path / "dl" / "blob.bin.part").exists()
    assert http_server.requests == ["/blob.bin"]


def test_fetch_flipped_byte_rejected(http_server, tmp_path, no_sleep):
    bad = bytearray(PAYLOAD)
    bad[1234] ^= 0x01
    url = _serve(http_server, data=bytes(bad))
    with pytest.raises(DataError, match=r"blob\.bin: md5 mismatch .*expected " + MD5):
        fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()
    assert http_server.requests == ["/blob.bin"]  # a bad file is not retried from the same mirror


def test_second_fetch_makes_no_request(http_server, tmp_path, caplog):
    remote = RemoteFile("blob.bin", MD5, (_serve(http_server),))
    fetch(remote, tmp_path)
    http_server.requests.clear()
    with caplog.at_level(logging.INFO, logger="sae.data.download"):
        assert fetch(remote, tmp_path).read_bytes() == PAYLOAD
    assert http_server.requests == []
    assert "up to date" in caplog.text


def test_partial_download_resumed(http_server, tmp_path):
    url = _serve(http_server)
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:3000])
    out = fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path)
    assert out.read_bytes() == PAYLOAD and md5sum(out) == MD5
    assert http_server.requests == ["/blob.bin"]
    assert http_server.headers[0].get("Range") == "bytes=3000-"
    assert not (tmp_path / "blob.bin.part").exists()


def test_resume_ignored_by_server_starts_over(http_server, tmp_path):
    http_server.support_range = False
    url = _serve(http_server)
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes that must not stay in front")
    out = fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert http_server.requests == ["/blob.bin"]  # the 200 body replaced the .part directly
    assert http_server.headers[0].get("Range") is not None


def test_stale_part_downloaded_again_from_scratch(http_server, tmp_path, no_sleep):
    url = _serve(http_server)
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 3000)  # right length, wrong bytes
    out = fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert [h.get("Range") for h in http_server.headers] == ["bytes=3000-", None]
    assert no_sleep == []


def test_part_longer_than_file_starts_over(http_server, tmp_path, no_sleep):
    url = _serve(http_server)
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD + b"extra")  # the server answers 416
    assert fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path).read_bytes() == PAYLOAD
    assert len(http_server.requests) == 2 and no_sleep == []


def test_first_mirror_404_second_used(http_server, tmp_path, no_sleep):
    good = _serve(http_server)
    out = fetch(RemoteFile("blob.bin", MD5, (f"{http_server.url}/gone/blob.bin", good)), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert http_server.requests == ["/gone/blob.bin", "/blob.bin"]  # a 404 is not retried
    assert no_sleep == []


def test_existing_corrupt_file_downloaded_again(http_server, tmp_path, caplog):
    url = _serve(http_server)
    (tmp_path / "blob.bin").write_bytes(PAYLOAD[:-1] + b"\x00")
    with caplog.at_level(logging.WARNING, logger="sae.data.download"):
        out = fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path)
    assert out.read_bytes() == PAYLOAD
    assert http_server.requests == ["/blob.bin"]
    assert "expected " + MD5 in caplog.text


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/blob.bin"


def test_unreachable_mirror_retried_then_next(http_server, tmp_path, no_sleep):
    out = fetch(RemoteFile("blob.bin", MD5, (_closed_port_url(), _serve(http_server))), tmp_path, retries=2)
    assert out.read_bytes() == PAYLOAD
    assert len(no_sleep) == 2  # 1 + 2 attempts on the dead mirror, backing off between them


def test_all_mirrors_unreachable(tmp_path, no_sleep):
    url = _closed_port_url()
    with pytest.raises(DataError, match=r"blob\.bin: could not download from any of"):
        fetch(RemoteFile("blob.bin", MD5, (url,)), tmp_path, retries=1, timeout=5)
    assert not (tmp_path / "blob.bin").exists()


def test_copy_verified(tmp_path, caplog):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    remote = RemoteFile("blob.bin", MD5, ())
    out = copy_verified(src, remote, tmp_path / "raw")
    assert out.read_bytes() == PAYLOAD
    src.unlink()  # an up-to-date destination is not copied again
    with caplog.at_level(logging.INFO, logger="sae.data.download"):
        assert copy_verified(src, remote, tmp_path / "raw") == out
    assert "up to date" in caplog.text


def test_copy_verified_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD[1:])
    with pytest.raises(DataError, match=r"blob\.bin: md5 mismatch .*src\.bin"):
        copy_verified(src, RemoteFile("blob.bin", MD5, ()), tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []

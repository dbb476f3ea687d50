"""Bounded output capture: head streamed, tail kept, memory bounded, UTF-8 kept whole."""

from __future__ import annotations

from taskqueue.worker.process import TAIL_BYTES, OutputCapture


def capture(limit: int) -> tuple[OutputCapture, list[tuple[str, str]]]:
    sunk: list[tuple[str, str]] = []
    return OutputCapture("stdout", limit, lambda s, t: sunk.append((s, t))), sunk


def text(sunk: list[tuple[str, str]]) -> str:
    return "".join(t for _, t in sunk)


def test_small_output_is_kept_whole_and_streamed_as_it_comes() -> None:
    cap, sunk = capture(1024)
    cap.feed(b"hello ")
    assert text(sunk) == "hello "
    cap.feed(b"world\n")
    cap.close()
    assert text(sunk) == "hello world\n"
    assert not cap.truncated
    assert cap.summary_tail() == "hello world\n"


def test_large_output_keeps_head_and_tail_with_a_marker() -> None:
    cap, sunk = capture(1000)
    body = b"".join(f"{i:05d}\n".encode() for i in range(20_000))
    for start in range(0, len(body), 4096):
        cap.feed(body[start : start + 4096])
    assert len(text(sunk)) == 500  # only the head while it runs
    cap.close()
    kept = text(sunk)
    assert kept.startswith(body[:500].decode())
    assert kept.endswith(body[-500:].decode())
    dropped = len(body) - 1000
    assert f"[... {dropped} bytes truncated ...]" in kept
    assert cap.truncated
    assert cap.total == len(body)


def test_ring_memory_stays_bounded_however_much_is_fed() -> None:
    cap, _ = capture(10_000)
    chunk = b"x" * 65536
    for _ in range(2000):  # 128 MiB
        cap.feed(chunk)
        assert cap._ring_size <= 10_000 // 2 + len(chunk)
        assert len(cap._summary) <= 2 * TAIL_BYTES + len(chunk)


def test_multibyte_characters_split_across_reads_decode_whole() -> None:
    cap, sunk = capture(1024)
    data = "héllo wörld €".encode()
    for i in range(len(data)):
        cap.feed(data[i : i + 1])
    cap.close()
    assert text(sunk) == "héllo wörld €"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    cap, sunk = capture(1024)
    cap.feed(b"ok \xff\xfe end")
    cap.close()
    assert text(sunk) == "ok \ufffd\ufffd end"

"""Bounded output capture: head streamed, tail kept, memory bounded, bytes kept as written,
and every chunk ending between UTF-8 characters."""

from __future__ import annotations

from taskqueue.store.codec import output_text
from taskqueue.worker.process import TAIL_BYTES, OutputCapture


def capture(limit: int) -> tuple[OutputCapture, list[tuple[str, bytes]]]:
    sunk: list[tuple[str, bytes]] = []
    return OutputCapture("stdout", limit, lambda s, t: sunk.append((s, t))), sunk


def text(sunk: list[tuple[str, bytes]]) -> str:
    """The chunks as the wire shows them: each decoded on its own."""
    return "".join(output_text(t) for _, t in sunk)


def raw(sunk: list[tuple[str, bytes]]) -> bytes:
    return b"".join(t for _, t in sunk)


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


def test_every_byte_is_kept_nul_and_invalid_utf8_included() -> None:
    cap, sunk = capture(1024)
    data = b"a\x00b \xff\xfe \xc3\xa9 \xed\xa0\x80 \xf8 end\n"
    cap.feed(data)
    cap.close()
    assert raw(sunk) == data
    assert text(sunk) == data.decode("utf-8", "replace")
    assert cap.summary_tail() == data.decode("utf-8", "replace")


def test_the_start_of_a_character_waits_for_its_end() -> None:
    cap, sunk = capture(1024)
    cap.feed(b"ok " + "✓".encode()[:2])
    assert raw(sunk) == b"ok "
    cap.feed("✓".encode()[2:] + b"\n")
    assert [t for _, t in sunk] == [b"ok ", "✓\n".encode()]
    for lead in (b"\xc3", b"\xe2\x9c", b"\xf0\x9f\x98"):  # 2, 3 and 4-byte characters
        cap, sunk = capture(1024)
        cap.feed(b"x" + lead)
        assert raw(sunk) == b"x"


def test_bytes_that_start_no_character_do_not_wait() -> None:
    for data in (b"x\x80", b"x\xc0", b"x\xc1", b"x\xf5", b"x\xff", b"\xe2\x9c\x93"):
        cap, sunk = capture(1024)
        cap.feed(data)
        assert raw(sunk) == data


def test_an_unfinished_character_is_sent_at_the_end_of_the_stream() -> None:
    cap, sunk = capture(1024)
    cap.feed(b"end \xe2\x9c")
    cap.close()
    assert raw(sunk) == b"end \xe2\x9c"
    assert text(sunk) == "end \ufffd"


def test_the_head_is_its_exact_bytes_even_where_it_ends_inside_a_character() -> None:
    cap, sunk = capture(10)  # a head of 5 bytes and a tail of 5
    cap.feed("abcd✓".encode())  # 7 bytes: the head ends after the first byte of ✓
    assert raw(sunk) == b"abcd\xe2"
    cap.feed(b"0123456789")
    cap.close()
    assert raw(sunk).startswith(b"abcd\xe2")
    assert raw(sunk).endswith(b"56789")

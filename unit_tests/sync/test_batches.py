"""A batch's spool files: the events as sent, and, when rejected records need them, the records' input lines beside
them, line for line, read back only for the lines asked for and deleted with the batch."""

from __future__ import annotations

import gzip

from destination_scarf.sync.batches import _FLUSH_BYTES, Spool


def _spool(tmp_path) -> Spool:
    return Spool(root=str(tmp_path), gzip_level=1, stream_labels=["downloads"])


def test_a_batch_that_keeps_messages_reads_back_the_input_line_of_any_event(tmp_path):
    spool = _spool(tmp_path)
    try:
        builder = spool.new_batch(1, max_events=10**6, max_bytes=1 << 40, keep_messages=True)
        count = 3 * _FLUSH_BYTES // 100  # several compressed chunks of each stream
        for n in range(1, count + 1):
            message = b'{"type":"RECORD","record":{"stream":"downloads","data":{"n":%d,"pad":"%s"}}}\r' % (n, b"x" * 40)
            builder.add_kept(b'{"n":"%d"}\n' % n, message, 0, n, n + 1)
        batch = builder.close()
        assert batch.events == count and batch.messages_path is not None and batch.messages_path.exists()
        wanted = {1, count // 2, count}
        messages, events = batch.read_messages(wanted), batch.read_lines(wanted)
        assert set(messages) == set(events) == wanted
        for n in wanted:
            assert messages[n].startswith(b'{"type":"RECORD","record":{"stream":"downloads","data":{"n":%d,' % n)
            assert not messages[n].endswith(b"\r")  # kept stripped, one line each
            assert events[n] == b'{"n":"%d"}' % n
        with gzip.open(batch.messages_path, "rb") as kept:
            assert sum(1 for _ in kept) == count
        batch.delete_spool()
        assert not batch.path.exists() and not batch.messages_path.exists()
    finally:
        spool.close()


def test_a_batch_keeps_no_messages_unless_asked_and_a_discarded_one_leaves_no_file(tmp_path):
    spool = _spool(tmp_path)
    try:
        plain = spool.new_batch(1, max_events=10, max_bytes=1 << 20)
        plain.add(b'{"n":"1"}\n', 0, 1, 1)
        batch = plain.close()
        assert batch.messages_path is None and batch.read_messages({1}) == {}
        assert [p.name for p in spool.path.glob("batch-*")] == ["batch-000001.ndjson.gz"]
        batch.delete_spool()
        kept = spool.new_batch(2, max_events=10, max_bytes=1 << 20, keep_messages=True)
        kept.add_kept(b'{"n":"2"}\n', b'{"type":"RECORD"}', 0, 1, 1)
        kept.discard()
        assert list(spool.path.glob("batch-*")) == []
    finally:
        spool.close()

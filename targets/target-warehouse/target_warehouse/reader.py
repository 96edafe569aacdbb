"""A Singer message reader that leaves RECORD bodies as raw JSON.

The SDK's reader parses every line into a dict; we only need the envelope. msgspec
decodes ``type``/``stream``/``time_extracted``/``version`` and hands the record over
as ``msgspec.Raw`` (a slice of the input line), which the sink validates in C and
copies to Postgres as is. Other messages are rare and are parsed into dicts.
"""

from __future__ import annotations

import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.exceptions import InvalidInputLine
from singer_sdk.singerlib.encoding import GenericSingerReader


class Envelope(msgspec.Struct):
    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.Raw()
    time_extracted: str | None = None
    version: int | None = None


_envelope = msgspec.json.Decoder(Envelope).decode
_any = msgspec.json.Decoder().decode


class RawRecordReader(GenericSingerReader[bytes]):
    """Reads stdin as bytes; RECORD callbacks get an ``Envelope``, others a dict."""

    @property
    def default_input(self) -> t.IO[bytes]:
        return sys.stdin.buffer

    def deserialize_json(self, line: bytes) -> dict:
        try:
            return _any(line)
        except msgspec.DecodeError as exc:
            msg = f"Unable to parse line as JSON ({exc}): {line[:200]!r}"
            raise InvalidInputLine(msg) from exc

    def process_lines(self, file_input, callbacks) -> Counter[str]:
        stats: Counter[str] = Counter()
        filein = file_input if file_input is not None else self.default_input
        on_record = callbacks["RECORD"]
        records = 0
        for number, line in enumerate(filein, start=1):
            if isinstance(line, str):
                line = line.encode()
            try:
                message = _envelope(line)
            except msgspec.DecodeError as exc:
                if not line.strip():
                    continue
                msg = f"Unable to parse input line {number} as a Singer message ({exc})"
                raise InvalidInputLine(msg) from exc
            if message.type == "RECORD":
                if message.stream is None or not len(message.record):
                    msg = f"RECORD message on line {number} lacks stream or record"
                    raise InvalidInputLine(msg)
                on_record(message)
                records += 1
                continue
            as_dict = self.deserialize_json(line)
            callback = callbacks.get(message.type)
            if callback is None:
                self._process_unknown_message(as_dict)
            callback(as_dict)
            stats[message.type] += 1
        stats["RECORD"] += records
        return stats

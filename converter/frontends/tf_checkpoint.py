"""TensorFlow checkpoint V2 reader (no TensorFlow needed).

    read_checkpoint(prefix) -> {key: np.ndarray}
    read_index(prefix) -> (BundleHeaderProto, {key: BundleEntryProto})

A checkpoint is PREFIX.index plus data shards PREFIX.data-XXXXX-of-YYYYY. The index is a
LevelDB-style sorted table ("SSTable"):
- footer (last 48 bytes): the metaindex and index block handles (varint64 offset, varint64
  size each), zero padding to 40 bytes, then the magic number 0xdb4775248b80fb57 (little
  endian, 8 bytes);
- every block is followed by a 5-byte trailer: compression type (0 = none) and a CRC;
- a block holds entries (varint32 shared key length, varint32 unshared length, varint32 value
  length, the unshared key bytes, the value) - keys are prefix-compressed against the previous
  key, reset at restart points - then the restart offsets (uint32 each) and their count;
- the index block maps each data block's last key to its handle; data blocks map tensor names
  to BundleEntryProto (the empty key holds the BundleHeaderProto).
Each entry names its shard, offset and size; the bytes are the tensor's little-endian values
(strings: varint64 lengths, a uint32 checksum, then the bytes).
"""

from __future__ import annotations

import glob
import os
import struct

import numpy as np

from ..errors import ConversionError
from .tf_proto import tf_graph_pb2 as pb

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48

# TensorFlow DataType -> numpy dtype (None: read specially)
DTYPES = {
    pb.DT_FLOAT: np.dtype("<f4"), pb.DT_DOUBLE: np.dtype("<f8"), pb.DT_INT32: np.dtype("<i4"),
    pb.DT_UINT8: np.dtype("u1"), pb.DT_INT16: np.dtype("<i2"), pb.DT_INT8: np.dtype("i1"),
    pb.DT_COMPLEX64: np.dtype("<c8"), pb.DT_INT64: np.dtype("<i8"), pb.DT_BOOL: np.dtype("?"),
    pb.DT_QINT8: np.dtype("i1"), pb.DT_QUINT8: np.dtype("u1"), pb.DT_QINT32: np.dtype("<i4"),
    pb.DT_BFLOAT16: np.dtype("<u2"), pb.DT_QINT16: np.dtype("<i2"),
    pb.DT_QUINT16: np.dtype("<u2"), pb.DT_UINT16: np.dtype("<u2"),
    pb.DT_COMPLEX128: np.dtype("<c16"), pb.DT_HALF: np.dtype("<f2"),
    pb.DT_UINT32: np.dtype("<u4"), pb.DT_UINT64: np.dtype("<u8"),
}


def dtype_name(dt: int) -> str:
    try:
        return pb.DataType.Name(dt).lower()[3:]
    except ValueError:
        return f"dtype {dt}"


def _varint(buf, pos, what):
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError(f"truncated varint in {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _block(data, handle, what):
    offset, size = handle
    if offset < 0 or offset + size + 5 > len(data):
        raise ValueError(f"{what} block [{offset}, +{size}] lies outside the file")
    if data[offset + size] != 0:
        raise ValueError(f"{what} block is compressed (type {data[offset + size]}); only "
                         "uncompressed tables are read")
    return data[offset:offset + size]


def _entries(block, what):
    """[(key, value)] of one table block."""
    if len(block) < 4:
        raise ValueError(f"{what} block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError(f"{what} block: bad restart count {num_restarts}")
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos, what)
        unshared, pos = _varint(block, pos, what)
        vlen, pos = _varint(block, pos, what)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ValueError(f"{what} block: entry at {pos} runs past the block")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        out.append((key, bytes(block[pos:pos + vlen])))
        pos += vlen
    return out


def _handle(value, what):
    offset, pos = _varint(value, 0, what)
    size, _ = _varint(value, pos, what)
    return offset, size


def read_index(prefix):
    """(BundleHeaderProto, {key: BundleEntryProto}) of PREFIX.index."""
    path = os.fspath(prefix) + ".index"
    if not os.path.isfile(path):
        raise ConversionError(f"checkpoint {prefix}: no index file {os.path.basename(path)}")
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    try:
        if len(data) < FOOTER_SIZE:
            raise ValueError(f"{len(data)} bytes, shorter than a table footer")
        footer = data[-FOOTER_SIZE:]
        (magic,) = struct.unpack_from("<Q", footer, 40)
        if magic != TABLE_MAGIC:
            raise ValueError(f"bad magic number {magic:#x} (want {TABLE_MAGIC:#x})")
        _meta, pos = _varint(footer, 0, "footer"), None
        pos = _meta[1]
        _, pos = _varint(footer, pos, "footer")        # metaindex size
        index_off, pos = _varint(footer, pos, "footer")
        index_size, pos = _varint(footer, pos, "footer")
        header, entries = None, {}
        for _last_key, value in _entries(_block(data, (index_off, index_size), "index"),
                                         "index"):
            for key, v in _entries(_block(data, _handle(value, "index"), "data"), "data"):
                if key == b"":
                    header = pb.BundleHeaderProto()
                    header.ParseFromString(v)
                else:
                    e = pb.BundleEntryProto()
                    e.ParseFromString(v)
                    entries[key.decode("utf-8", "replace")] = e
    except Exception as e:  # noqa: BLE001 - struct, protobuf decode and format errors
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"checkpoint index {name}: corrupt or not a TensorFlow "
                              f"checkpoint index ({msg})") from None
    if header is None:
        raise ConversionError(f"checkpoint index {name}: corrupt (no bundle header entry)")
    if header.endianness != pb.BundleHeaderProto.LITTLE:
        raise ConversionError(f"checkpoint index {name}: big-endian checkpoints are not read")
    return header, entries


def _shard_path(prefix, shard, num_shards):
    return f"{os.fspath(prefix)}.data-{shard:05d}-of-{num_shards:05d}"


def _decode(key, entry, raw):
    shape = tuple(int(d.size) for d in entry.shape.dim)
    if entry.dtype == pb.DT_STRING:
        n = int(np.prod(shape, dtype=np.int64))
        lengths, pos = [], 0
        for _ in range(n):
            length, pos = _varint(raw, pos, f"string tensor '{key}'")
            lengths.append(length)
        pos += 4 if n else 0                                # checksum of the lengths
        values = []
        for length in lengths:
            values.append(bytes(raw[pos:pos + length]))
            pos += length
        return np.array(values, dtype=object).reshape(shape)
    dtype = DTYPES.get(entry.dtype)
    if dtype is None:
        raise ConversionError(f"checkpoint tensor '{key}': {dtype_name(entry.dtype)} tensors "
                              "are not supported")
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * dtype.itemsize:
        raise ConversionError(f"checkpoint tensor '{key}': {len(raw)} bytes for shape {shape} "
                              f"of {dtype_name(entry.dtype)}")
    value = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if entry.dtype == pb.DT_BFLOAT16:     # the upper 16 bits of a float32
        return (value.astype(np.uint32) << 16).view(np.float32)
    return value.astype(dtype.newbyteorder("="), copy=True)


class Checkpoint:
    """A checkpoint V2 opened lazily: keys from the index, values read from the shards on
    demand (`get`)."""

    def __init__(self, prefix):
        prefix = os.fspath(prefix)
        if prefix.endswith(".index"):
            prefix = prefix[:-len(".index")]
        elif ".data-" in os.path.basename(prefix):
            prefix = prefix[:prefix.rindex(".data-")]
        self.prefix = prefix
        self.header, self.entries = read_index(prefix)
        self._files = {}

    def keys(self):
        return list(self.entries)

    def __contains__(self, key):
        return key in self.entries

    def get(self, key) -> np.ndarray:
        entry = self.entries.get(key)
        if entry is None:
            raise ConversionError(f"checkpoint {os.path.basename(self.prefix)}: no tensor "
                                  f"'{key}'")
        if len(entry.slices):
            raise ConversionError(f"checkpoint tensor '{key}' is partitioned (sliced) into "
                                  f"{len(entry.slices)} parts; partitioned variables are not "
                                  "supported")
        num = max(int(self.header.num_shards), 1)
        path = _shard_path(self.prefix, entry.shard_id, num)
        if path not in self._files:
            if not os.path.isfile(path):
                raise ConversionError(f"checkpoint tensor '{key}': data shard "
                                      f"{os.path.basename(path)} not found")
            with open(path, "rb") as f:
                self._files[path] = f.read()
        data = self._files[path]
        if entry.offset < 0 or entry.offset + entry.size > len(data):
            raise ConversionError(f"checkpoint tensor '{key}': bytes [{entry.offset}, "
                                  f"+{entry.size}] lie outside {os.path.basename(path)}")
        return _decode(key, entry, memoryview(data)[entry.offset:entry.offset + entry.size])


def read_checkpoint(prefix) -> dict:
    """{key: value} of every tensor of the checkpoint (partitioned ones are an error)."""
    ckpt = Checkpoint(prefix)
    return {k: ckpt.get(k) for k in ckpt.keys()}


def find_prefix(path):
    """The checkpoint prefix for a prefix, an .index file or a data shard path."""
    path = os.fspath(path)
    if os.path.isfile(path + ".index"):
        return path
    if path.endswith(".index") and os.path.isfile(path):
        return path[:-len(".index")]
    if ".data-" in os.path.basename(path):
        return path[:path.rindex(".data-")]
    if glob.glob(glob.escape(path) + ".data-*"):
        return path
    raise ConversionError(f"checkpoint {path}: no checkpoint index {os.path.basename(path)}"
                          ".index found")

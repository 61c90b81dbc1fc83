"""A small jitdump reader for the tests (perf's jitdump-specification.txt layout)."""

import struct

MAGIC = 0x4A695444
CODE_LOAD, CODE_MOVE, CODE_DEBUG_INFO, CODE_CLOSE, CODE_UNWINDING_INFO = 0, 1, 2, 3, 4


class Dump:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        (self.magic, self.version, self.header_size, self.elf_mach, _pad, self.pid,
         self.timestamp, self.flags) = struct.unpack_from("<IIIIIIQQ", self.data, 0)
        self.records = []
        off = self.header_size
        while off < len(self.data):
            assert off + 16 <= len(self.data), "truncated record header at %d" % off
            rid, size, ts = struct.unpack_from("<IIQ", self.data, off)
            assert size >= 16 and off + size <= len(self.data), \
                "bad record at %d: id %d size %d (file %d)" % (off, rid, size, len(self.data))
            body = self.data[off + 16: off + size]
            self.records.append(self._parse(rid, size, ts, body))
            off += size

    @staticmethod
    def _parse(rid, size, ts, body):
        r = {"id": rid, "size": size, "timestamp": ts}
        if rid == CODE_LOAD:
            pid, tid, vma, addr, code_size, index = struct.unpack_from("<IIQQQQ", body, 0)
            end = body.index(b"\0", 40)
            r.update(pid=pid, tid=tid, vma=vma, addr=addr, code_size=code_size, index=index,
                     name=body[40:end].decode("utf-8", "replace"),
                     code=body[end + 1:end + 1 + code_size])
            assert end + 1 + code_size == len(body)
        elif rid == CODE_UNWINDING_INFO:
            data_size, hdr_size, mapped = struct.unpack_from("<QQQ", body, 0)
            blob = body[24:24 + data_size]
            # .eh_frame first, .eh_frame_hdr last (as perf's genelf reads it).
            r.update(mapped_size=mapped, hdr_size=hdr_size,
                     eh_frame=blob[:data_size - hdr_size], eh_frame_hdr=blob[data_size - hdr_size:])
        elif rid == CODE_DEBUG_INFO:
            addr, n = struct.unpack_from("<QQ", body, 0)
            entries, off = [], 16
            for _ in range(n):
                eaddr, line, _discrim = struct.unpack_from("<Qii", body, off)
                end = body.index(b"\0", off + 16)
                entries.append((eaddr, line, body[off + 16:end].decode()))
                off = end + 1
            r.update(addr=addr, entries=entries)
        return r

    def loads(self):
        return [r for r in self.records if r["id"] == CODE_LOAD]


def round8(n):
    return (n + 7) & ~7


def check_unwind_record(u, code_size):
    """The invariants CPython's TestJitdumpFileFormat asserts, for one unwinding record."""
    eh, hdr = u["eh_frame"], u["eh_frame_hdr"]
    assert u["hdr_size"] == 20 and len(hdr) == 20
    cie_len = struct.unpack_from("<I", eh, 0)[0] + 4
    cie_id, version = struct.unpack_from("<IB", eh, 4)
    assert (cie_id, version) == (0, 1)
    assert eh[9:12] == b"zR\0"
    fde = cie_len
    fde_len, cie_ptr, pc_begin, pc_range = struct.unpack_from("<IIiI", eh, fde)
    assert cie_ptr == fde + 4  # points back to the CIE at offset 0
    assert pc_range == code_size
    assert pc_begin == -(round8(code_size) + fde + 8)
    version, ptr_enc, count_enc, table_enc, eh_ptr, count, start, fde_ref = \
        struct.unpack_from("<BBBBiIii", hdr, 0)
    assert (version, ptr_enc, count_enc, table_enc, count) == (1, 0x1B, 0x03, 0x3B, 1)
    assert eh_ptr == -(len(eh) + 4)
    assert start == -(round8(code_size) + len(eh))
    assert fde_ref == fde - len(eh)
    assert u["mapped_size"] == (len(eh) + 20 + 15) // 16 * 16

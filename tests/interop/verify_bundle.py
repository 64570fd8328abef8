#!/usr/bin/env python3
"""Independent verifier for exhibit evidence bundles (*.exhibit.tar.zst).

Written from the bundle format specification only (not from exhibit's Rust code), so
that it can catch a writer and a reader that agree with each other but not with the
spec. Needs the Python packages `cryptography` and `zstandard`.

Usage: verify_bundle.py BUNDLE PUBKEY_PEM

Prints "OK <n> subjects" and exits 0 when the bundle verifies; prints
"FAIL: <reason>" and exits 1 otherwise (also on unreadable or hostile input).

What is checked:
  * the bundle is one zstd stream (window <= 2^27) holding a POSIX tar, read in one
    streaming pass; no PAX global headers; the padding after each entry's data and
    after each PAX header's records is zero; no data after the end-of-archive blocks
    other than zero padding;
  * the last member is exhibit/manifest.dsse.json, a DSSE envelope whose payloadType
    is application/vnd.in-toto+json and which carries at least one Ed25519 signature
    whose keyid (hex sha256 of the key's SPKI DER) is the given key's and which
    verifies over the DSSE PAE;
  * the payload is an in-toto Statement v1 with predicateType urn:exhibit:manifest:v1,
    whose subjects are, in order, exactly the other exhibit/ members in tar order, each
    with the sha256 of the member's bytes;
  * exhibit/manifest.json equals the predicate (as JSON values, types included);
  * exhibit/fs/changes.jsonl has one record per content entry (rootfs/, literal/,
    mounts/, volumes/), in tar order, naming its member, and for regular files the
    sha256 of the stored bytes; no entry is missing, extra or duplicated;
  * PAX extended headers of content entries carry only path, linkpath, size, mtime and
    SCHILY.xattr.* keys.
"""

import base64
import binascii
import hashlib
import json
import sys
import tarfile
import tempfile

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:exhibit:manifest:v1"
ENVELOPE = "exhibit/manifest.dsse.json"
MANIFEST = "exhibit/manifest.json"
CHANGES = "exhibit/fs/changes.jsonl"
META_PREFIX = "exhibit/"
CONTENT_PREFIXES = ("rootfs/", "literal/", "mounts/", "volumes/")
CONTENT_PAX_KEYS = {"path", "linkpath", "size", "mtime"}

# Limits from the format (section "Limits"): a verifier must not be made to use
# unbounded memory by a hostile bundle.
MAX_ENVELOPE = 16 << 20
MAX_JSON_DOC = 16 << 20
MAX_JSON_DEPTH = 64
MAX_ZSTD_WINDOW = 1 << 27
MAX_META_MEMBERS = 20_000
MAX_CONTENT_ENTRIES = 2_000_000
MAX_DECOMPRESSED = 1 << 40
CHUNK = 1 << 20


class Fail(Exception):
    """Verification failed; the message says why."""


# ---------------------------------------------------------------- helpers


def strict_json(data, what):
    """Parse JSON text strictly: UTF-8, no duplicate keys, no NaN/Infinity, depth <= 64."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise Fail(f"{what}: not UTF-8 ({e})") from None
    else:
        text = data

    def no_dupes(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                raise Fail(f"{what}: duplicate key {k!r}")
            obj[k] = v
        return obj

    def no_constants(name):
        raise Fail(f"{what}: non-standard JSON constant {name}")

    try:
        value = json.loads(text, object_pairs_hook=no_dupes, parse_constant=no_constants)
    except Fail:
        raise
    except RecursionError:
        raise Fail(f"{what}: JSON nested too deeply") from None
    except ValueError as e:
        raise Fail(f"{what}: invalid JSON ({e})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise Fail(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH}")
    return value


def json_depth(value):
    depth = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v)
    return depth


def json_equal(a, b):
    """Equality of JSON values that, unlike ==, does not confuse true with 1 or 1 with 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def b64decode_std(s, what):
    """Standard, padded base64 (RFC 4648 section 4), nothing else accepted."""
    if not isinstance(s, str):
        raise Fail(f"{what}: not a string")
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise Fail(f"{what}: not standard base64 ({e})") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise Fail(f"{what}: not canonical padded standard base64")
    return raw


def is_hex_sha256(s):
    return (
        isinstance(s, str)
        and len(s) == 64
        and all(c in "0123456789abcdefABCDEF" for c in s)
    )


def name_bytes(name):
    """Raw bytes of a member name as read with encoding utf-8 / surrogateescape."""
    return name.encode("utf-8", "surrogateescape")


def strip_slash(b):
    # Directory entries may be written as "rootfs/a/" or "rootfs/a"; both name the same entry.
    return b.rstrip(b"/") if len(b) > 1 else b


def show(b):
    return b.decode("utf-8", "backslashreplace")


def pae(payload_type, body):
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


class ZstdFrames:
    """Streaming zstd decoder over exactly one frame.

    Unlike ZstdDecompressor.stream_reader it notices a stream cut inside a frame
    (truncation) and junk after the last frame. Compressed input is fed in small
    pieces so that a highly compressible piece cannot balloon in memory.
    """

    FEED = 512

    def __init__(self, raw):
        import zstandard

        self.zstandard = zstandard
        self.raw = raw
        self.dctx = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
        self.obj = None  # decompressor of the frame being read
        self.pending = b""
        self.ppos = 0
        self.out = b""
        self.opos = 0
        self.frames = 0
        self.eof = False

    def _produce(self):
        while self.opos >= len(self.out) and not self.eof:
            if self.ppos >= len(self.pending):
                self.pending, self.ppos = self.raw.read(CHUNK), 0
                if not self.pending:
                    if self.obj is not None:
                        raise Fail("truncated bundle: the zstd stream ends inside a frame")
                    if self.frames == 0:
                        raise Fail("empty bundle")
                    self.eof = True
                    return
            if self.obj is None:
                # Exactly one zstd frame and nothing after it (bundle-format.md 2):
                # skippable frames and further frames carry bytes nobody signed.
                if self.frames > 0:
                    raise Fail("bytes after the zstd frame: a bundle is exactly one zstd frame")
                if self.pending[self.ppos : self.ppos + 4] != b"\x28\xb5\x2f\xfd":
                    raise Fail("the file does not start with a zstd frame (skippable frames are refused)")
                self.obj = self.dctx.decompressobj()
            piece = self.pending[self.ppos : self.ppos + self.FEED]
            self.ppos += len(piece)
            try:
                self.out, self.opos = self.obj.decompress(piece), 0
            except self.zstandard.ZstdError as e:
                raise Fail(f"bad zstd stream: {e}") from None
            if self.obj.eof:
                unused = self.obj.unused_data
                self.obj = None
                self.frames += 1
                if unused:
                    self.pending = unused + self.pending[self.ppos :]
                    self.ppos = 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = CHUNK
        self._produce()
        data = self.out[self.opos : self.opos + n]
        self.opos += len(data)
        return data


class RingReader:
    """Counts the decompressed bytes (capped) and keeps the last ones for the tail check."""

    KEEP = 1 << 20

    def __init__(self, inner, limit):
        self.inner = inner
        self.limit = limit
        self.buf = bytearray()
        self.start = 0  # absolute offset of buf[0]
        self.end = 0  # absolute offset after the last byte read

    def read(self, n=-1):
        data = self.inner.read(n)
        self.end += len(data)
        if self.end > self.limit:
            raise Fail("bundle larger than the decompressed size limit")
        self.buf += data
        if len(self.buf) > 2 * self.KEEP:
            drop = len(self.buf) - self.KEEP
            del self.buf[:drop]
            self.start += drop
        return data

    def since(self, offset):
        if offset < self.start or offset > self.end:
            raise Fail("internal: end-of-archive offset outside the kept window")
        return bytes(self.buf[offset - self.start :])

    def span(self, start, end):
        """The stream's bytes [start, end), which must still be in the kept window."""
        if start < self.start or end > self.end or start > end:
            raise Fail(f"tar bytes {start}..{end} outside the verifier's window")
        return bytes(self.buf[start - self.start : end - self.start])


def check_padding(ring, name, start, end):
    """The bytes between the end of an entry's data (or of a PAX header's records) and
    the next 512-byte boundary must be zero (section 3.1)."""
    if end - start >= 512:
        raise Fail(f"{show(name)}: {end - start} bytes between its data and the next header")
    pad = ring.span(start, end)
    if pad.count(0) != len(pad):
        raise Fail(f"{show(name)}: non-zero bytes in the tar padding after its data")


def check_pax_padding(ring, m, nb):
    """An entry with a PAX header: the records' padding must be zero."""
    header_at = m.offset_data - 512
    if header_at <= m.offset:
        return
    x = ring.span(m.offset, m.offset + 512)
    if x[156:157] != b"x":
        return
    try:
        size = int(x[124:136].split(b"\0")[0].strip() or b"0", 8)
    except ValueError:
        raise Fail(f"{show(nb)}: malformed PAX header size") from None
    check_padding(ring, nb, m.offset + 512 + size, header_at)


def check_tail(tf, ring):
    """After the last member: only the end-of-archive blocks (two or more zero blocks)
    and zero padding may follow. tarfile stops quietly at a bad or missing header, so
    look at the bytes from the header where it stopped to the end of the stream."""
    offset = tf.offset
    tail = ring.since(offset)
    zeros = 0
    while tail:
        if tail.count(0) != len(tail):
            at = offset + zeros + len(tail) - len(tail.lstrip(b"\0"))
            raise Fail(f"invalid tar header or data after the end-of-archive marker (offset {at})")
        zeros += len(tail)
        tail = ring.read(CHUNK)
    if zeros < 1024:
        raise Fail("truncated bundle: the tar stream has no end-of-archive marker")


def read_member(tf, member, sink=None, cap=None):
    """Hash (and optionally keep or spool) a regular member's bytes."""
    h = hashlib.sha256()
    f = tf.extractfile(member)
    if f is None:
        return h.hexdigest(), 0
    n = 0
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            break
        n += len(chunk)
        if cap is not None and n > cap:
            raise Fail(f"{member.name}: larger than {cap} bytes")
        h.update(chunk)
        if sink is not None:
            sink.write(chunk)
    if n != member.size:
        raise Fail(f"{member.name}: truncated ({n} of {member.size} bytes)")
    return h.hexdigest(), n


# ---------------------------------------------------------------- the pass over the tar


def scan(path):
    """Read the bundle once. Returns (metadata members, content entries, kept small
    members, spooled changes.jsonl or None). Nothing is parsed here, only hashed."""
    meta = []  # (name, sha256 hex)
    meta_names = set()
    content = []  # (name bytes, is regular, sha256 hex or None, size)
    kept = {}  # name -> bytes, for the envelope and the manifest
    changes = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    have_changes = False
    envelope_seen = False

    with open(path, "rb") as raw:
        ring = RingReader(ZstdFrames(raw), MAX_DECOMPRESSED)
        tf = tarfile.open(fileobj=ring, mode="r|", encoding="utf-8", errors="surrogateescape")
        prev = None  # (name bytes, end of its data) of the member before
        for m in tf:
            if envelope_seen:
                raise Fail(f"member {show(name_bytes(m.name))!r} after {ENVELOPE} (must be last)")
            name = m.name
            nb = name_bytes(name)
            if prev is not None:
                check_padding(ring, prev[0], prev[1], m.offset)
            check_pax_padding(ring, m, nb)
            prev = (nb, m.offset_data + (m.size if m.isreg() else 0))
            if name.startswith(META_PREFIX):
                if not m.isreg():
                    raise Fail(f"metadata member {show(nb)!r} is not a regular file")
                if m.sparse is not None:
                    raise Fail(f"metadata member {show(nb)!r} is sparse")
                if name in meta_names:
                    raise Fail(f"duplicate metadata member {show(nb)!r}")
                if name == ENVELOPE:
                    if m.size > MAX_ENVELOPE:
                        raise Fail(f"{ENVELOPE} larger than {MAX_ENVELOPE} bytes")
                    buf = bytearray()
                    read_member(tf, m, _BytesSink(buf), MAX_ENVELOPE)
                    kept[ENVELOPE] = bytes(buf)
                    envelope_seen = True
                    continue
                if len(meta) >= MAX_META_MEMBERS:
                    raise Fail(f"more than {MAX_META_MEMBERS} metadata members")
                meta_names.add(name)
                if name == MANIFEST:
                    buf = bytearray()
                    digest, _ = read_member(tf, m, _BytesSink(buf), MAX_JSON_DOC)
                    kept[MANIFEST] = bytes(buf)
                elif name == CHANGES:
                    digest, _ = read_member(tf, m, changes)
                    have_changes = True
                else:
                    digest, _ = read_member(tf, m)
                meta.append((name, digest))
            elif name.startswith(CONTENT_PREFIXES):
                if len(content) >= MAX_CONTENT_ENTRIES:
                    raise Fail(f"more than {MAX_CONTENT_ENTRIES} content entries")
                bad = [
                    k
                    for k in m.pax_headers
                    if k not in CONTENT_PAX_KEYS and not k.startswith("SCHILY.xattr.")
                ]
                if bad:
                    raise Fail(f"content entry {show(nb)!r}: unexpected PAX keys {sorted(bad)}")
                if m.sparse is not None:
                    raise Fail(f"content entry {show(nb)!r} is sparse")
                if m.isreg():
                    digest, size = read_member(tf, m)
                    content.append((nb, True, digest, size))
                else:
                    content.append((nb, False, None, 0))
            else:
                raise Fail(
                    f"member {show(nb)!r} is neither exhibit/ metadata nor content"
                    " (rootfs/, literal/, mounts/, volumes/)"
                )
        if tf.pax_headers:
            raise Fail("bundle has a PAX global header")
        if prev is not None:
            check_padding(ring, prev[0], prev[1], tf.offset)
        check_tail(tf, ring)

    if not envelope_seen:
        raise Fail(f"no {ENVELOPE} member (the bundle must end with it)")
    changes.seek(0)
    return meta, content, kept, (changes if have_changes else None)


class _BytesSink:
    def __init__(self, buf):
        self.buf = buf

    def write(self, data):
        self.buf += data


# ---------------------------------------------------------------- envelope and statement


def load_key(pubkey_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        with open(pubkey_path, "rb") as f:
            pem = f.read(1 << 20)
    except OSError as e:
        raise Fail(f"cannot read public key {pubkey_path}: {e}") from None
    if b"-----BEGIN PUBLIC KEY-----" not in pem:
        raise Fail(f"{pubkey_path}: not an SPKI PEM public key")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise Fail(f"{pubkey_path}: cannot load public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Fail(f"{pubkey_path}: not an Ed25519 public key")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, hashlib.sha256(der).hexdigest()


def verify_envelope(envelope_bytes, key, keyid):
    from cryptography.exceptions import InvalidSignature

    env = strict_json(envelope_bytes, ENVELOPE)
    if not isinstance(env, dict):
        raise Fail(f"{ENVELOPE}: not a JSON object")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise Fail(f"{ENVELOPE}: payloadType is {env.get('payloadType')!r}, expected {PAYLOAD_TYPE!r}")
    body = b64decode_std(env.get("payload"), f"{ENVELOPE} payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list):
        raise Fail(f"{ENVELOPE}: signatures is not a list")
    if not sigs:
        raise Fail(f"{ENVELOPE}: bundle is unsigned (no signatures) but a public key was given")
    message = pae(env["payloadType"], body)
    matched = 0
    for i, s in enumerate(sigs):
        if not isinstance(s, dict):
            raise Fail(f"{ENVELOPE}: signatures[{i}] is not an object")
        kid = s.get("keyid")
        if not isinstance(kid, str) or kid.lower() != keyid:
            continue
        matched += 1
        sig = b64decode_std(s.get("sig"), f"{ENVELOPE} signatures[{i}].sig")
        if len(sig) != 64:
            continue
        try:
            key.verify(sig, message)
        except InvalidSignature:
            continue
        return body
    if matched:
        raise Fail(f"{ENVELOPE}: signature by key {keyid} does not verify")
    raise Fail(f"{ENVELOPE}: no signature with keyid {keyid}")


def check_statement(body, meta, manifest_bytes):
    st = strict_json(body, "statement")
    if not isinstance(st, dict):
        raise Fail("statement: not a JSON object")
    if st.get("_type") != STATEMENT_TYPE:
        raise Fail(f"statement: _type is {st.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    if st.get("predicateType") != PREDICATE_TYPE:
        raise Fail(f"statement: predicateType is {st.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
    subjects = st.get("subject")
    if not isinstance(subjects, list):
        raise Fail("statement: subject is not a list")
    for i, (subj, (name, digest)) in enumerate(zip(subjects, meta)):
        if not isinstance(subj, dict):
            raise Fail(f"statement: subject[{i}] is not an object")
        sname = subj.get("name")
        if sname != name:
            raise Fail(f"statement: subject[{i}] is {sname!r} but member {i} is {name!r}")
        d = subj.get("digest")
        if not isinstance(d, dict) or not is_hex_sha256(d.get("sha256")):
            raise Fail(f"statement: subject {name!r} has no sha256 digest")
        if d["sha256"].lower() != digest:
            raise Fail(f"{name}: sha256 {digest} does not match the signed digest {d['sha256']}")
    if len(subjects) != len(meta):
        if len(subjects) > len(meta):
            extra = subjects[len(meta)]
            what = extra.get("name") if isinstance(extra, dict) else extra
            raise Fail(f"statement: subject {what!r} has no member in the bundle")
        raise Fail(f"metadata member {meta[len(subjects)][0]!r} is not a subject of the statement")
    if "predicate" not in st:
        raise Fail("statement: no predicate")
    if manifest_bytes is None:
        raise Fail(f"no {MANIFEST} member")
    manifest = strict_json(manifest_bytes, MANIFEST)
    if not json_equal(manifest, st["predicate"]):
        raise Fail(f"{MANIFEST} differs from the statement's predicate")
    return len(subjects)


# ---------------------------------------------------------------- records


def record_member(rec, lineno):
    m = rec.get("member")
    if isinstance(m, str):
        return name_bytes(m)
    if isinstance(m, dict) and set(m) == {"bytes"}:
        return b64decode_std(m["bytes"], f"{CHANGES} line {lineno}: member.bytes")
    raise Fail(f"{CHANGES} line {lineno}: member is neither a string nor {{\"bytes\": ...}}")


def check_records(changes, content):
    if changes is None:
        if content:
            raise Fail(f"bundle has {len(content)} content entries but no {CHANGES}")
        return
    i = 0
    lineno = 0
    pending_blank = False
    while True:
        line = changes.readline(MAX_JSON_DOC + 2)
        if not line:
            break
        lineno += 1
        if len(line) > MAX_JSON_DOC + 1:
            raise Fail(f"{CHANGES} line {lineno}: longer than {MAX_JSON_DOC} bytes")
        if pending_blank:
            raise Fail(f"{CHANGES} line {lineno - 1}: empty line")
        stripped = line.rstrip(b"\n")
        if not stripped.strip():
            pending_blank = True
            continue
        rec = strict_json(stripped, f"{CHANGES} line {lineno}")
        if not isinstance(rec, dict):
            raise Fail(f"{CHANGES} line {lineno}: not a JSON object")
        if "member" not in rec or "sha256" not in rec:
            raise Fail(f"{CHANGES} line {lineno}: record lacks member or sha256")
        member = record_member(rec, lineno)
        sha = rec["sha256"]
        if sha is not None and not is_hex_sha256(sha):
            raise Fail(f"{CHANGES} line {lineno}: sha256 is neither null nor 64 hex digits")
        if i >= len(content):
            raise Fail(f"{CHANGES} line {lineno}: record for {show(member)!r} has no entry in the bundle")
        name, is_reg, digest, size = content[i]
        if strip_slash(member) != strip_slash(name):
            raise Fail(
                f"{CHANGES} line {lineno}: record names {show(member)!r} but content entry {i} is {show(name)!r}"
            )
        if is_reg:
            if sha is None:
                if size != 0:
                    raise Fail(f"{show(name)}: {size} bytes stored but the record's sha256 is null")
            elif sha.lower() != digest:
                raise Fail(f"{show(name)}: sha256 {digest} does not match the record's {sha}")
        i += 1
    if i < len(content):
        raise Fail(f"content entry {show(content[i][0])!r} has no record in {CHANGES}")
    # Duplicates: the one-to-one ordered match above already refuses an entry recorded
    # twice unless it is also stored twice; refuse that too.
    seen = set()
    for name, *_ in content:
        key = strip_slash(name)
        if key in seen:
            raise Fail(f"content entry {show(name)!r} appears more than once")
        seen.add(key)


# ---------------------------------------------------------------- main


def verify(bundle, pubkey):
    try:
        import cryptography  # noqa: F401
        import zstandard  # noqa: F401
    except ImportError as e:
        raise Fail(f"missing Python package: {e.name} (pip install cryptography zstandard)") from None
    key, keyid = load_key(pubkey)
    meta, content, kept, changes = scan(bundle)
    try:
        # Nothing from the bundle is interpreted before the signature verifies.
        body = verify_envelope(kept[ENVELOPE], key, keyid)
        n = check_statement(body, meta, kept.get(MANIFEST))
        check_records(changes, content)
    finally:
        if changes is not None:
            changes.close()
    return n


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print("usage: verify_bundle.py BUNDLE PUBKEY_PEM", file=sys.stderr)
        print("FAIL: usage: verify_bundle.py BUNDLE PUBKEY_PEM")
        return 1
    try:
        n = verify(argv[1], argv[2])
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    except tarfile.TarError as e:
        print(f"FAIL: bad tar stream: {e}")
        return 1
    except EOFError as e:
        print(f"FAIL: truncated bundle: {e}")
        return 1
    except OSError as e:
        print(f"FAIL: I/O error: {e}")
        return 1
    except MemoryError:
        print("FAIL: out of memory")
        return 1
    except RecursionError:
        print("FAIL: input nested too deeply")
        return 1
    except Exception as e:  # zstd errors, anything unexpected: still no traceback
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    print(f"OK {n} subjects")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

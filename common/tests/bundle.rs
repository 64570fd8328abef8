//! Round trip and tampering: a bundle written by the library verifies, and any change to
//! any member, the member list, the signature or the stream fails verification.

use exhibit_common::dsse::{Envelope, SignerStatus};
use exhibit_common::keys;
use exhibit_common::manifest::{Completeness, ContainerIdentity, Counts, Manifest, Tool};
use exhibit_common::records::{ChangeKind, ChangeRecord, FileType, Source};
use exhibit_common::text::ByteText;
use exhibit_common::{verify, BundleWriter, VerifyError, VerifyOptions, WriterOptions};
use exhibit_tests::tamper::{self, compress, decompress};
use std::io::Write;

fn manifest() -> Manifest {
    Manifest {
        schema_version: 1,
        tool: Tool {
            name: "test".into(),
            version: "0".into(),
        },
        case: Some("INC-1".into()),
        examiner: None,
        note: None,
        container: ContainerIdentity {
            runtime: "docker".into(),
            id: "abc".into(),
            ..Default::default()
        },
        started_at: "2026-11-23T08:31:02.123456789Z".into(),
        ended_at: "2026-11-23T08:31:03.123456789Z".into(),
        freeze: None,
        completeness: Completeness::from_reasons(vec![]),
        fs_method: "overlay-upperdir".into(),
        counts: Counts::default(),
        command_line: vec![],
        operator_uid: 0,
        logs_cut_at: None,
    }
}

fn record(member: &[u8], path: &[u8], ft: FileType, size: u64) -> ChangeRecord {
    let mut r = ChangeRecord::new(
        member.to_vec(),
        path.to_vec(),
        Source::Upper,
        ChangeKind::Added,
        ft,
    );
    r.mode = 0o755;
    r.size = size;
    r.stored_size = size;
    r.atime_ns = 1;
    r.mtime_ns = 1_700_000_000_000_000_001;
    r.ctime_ns = 1;
    r
}

/// A writer into memory with this zstd level and thread count.
fn writer(level: i32, threads: u32) -> BundleWriter<Vec<u8>> {
    BundleWriter::new(Vec::new(), WriterOptions { level, threads }).unwrap()
}

/// Adds a one-event acquisition log and the manifest; returns the bundle bytes.
fn seal(mut w: BundleWriter<Vec<u8>>, key: Option<&ed25519_dalek::SigningKey>) -> Vec<u8> {
    let mut log = exhibit_common::custody::AcquisitionLog::new();
    log.record("files", exhibit_common::custody::Outcome::Ok, None, None);
    w.add_member("exhibit/acquisition.jsonl", log.bytes())
        .unwrap();
    w.finish(manifest(), key).unwrap().0
}

/// Writes a small but representative bundle and returns its bytes.
fn sample(key: Option<&ed25519_dalek::SigningKey>) -> Vec<u8> {
    let mut w = writer(3, 2);
    w.add_member("exhibit/host.json", br#"{"hostname":"h"}"#)
        .unwrap();
    w.add_member("exhibit/container.json", br#"{"id":"abc"}"#)
        .unwrap();
    w.add_member("exhibit/processes.jsonl", b"").unwrap();
    w.add_member("exhibit/sockets.jsonl", b"").unwrap();
    w.add_member("exhibit/image.json", b"{}").unwrap();
    let dir = record(b"rootfs/tmp", b"/tmp", FileType::Dir, 0);
    w.add_content(dir, None, |_, _| {}).unwrap();
    let body = vec![b'x'; 3000];
    let f = record(b"rootfs/tmp/payload", b"/tmp/payload", FileType::File, 3000);
    w.add_content(f, Some(&mut &body[..]), |_, _| {}).unwrap();
    let mut l = record(b"rootfs/tmp/link", b"/tmp/link", FileType::Symlink, 0);
    l.link_target = Some(ByteText(b"/etc/shadow".to_vec()));
    w.add_content(l, None, |_, _| {}).unwrap();
    let odd = [
        b"rootfs/tmp/".to_vec(),
        vec![0xff, b'\n', b'a'],
        vec![b'n'; 120],
    ]
    .concat();
    let f2 = record(&odd, &odd[6..], FileType::File, 5);
    w.add_content(f2, Some(&mut &b"hello"[..]), |_, _| {})
        .unwrap();
    let wh = record(b"rootfs/etc/.wh.motd", b"/etc/motd", FileType::Whiteout, 0);
    w.add_content(
        ChangeRecord {
            kind: ChangeKind::Deleted,
            ..wh
        },
        None,
        |_, _| {},
    )
    .unwrap();
    w.add_member(
        "exhibit/logs/container.jsonl",
        b"{\"t\":null,\"stream\":\"stdout\",\"line\":\"hi\"}\n",
    )
    .unwrap();
    w.add_member("exhibit/volumes.json", b"[]").unwrap();
    seal(w, key)
}

fn verify_bytes(
    bytes: &[u8],
    keys: &[ed25519_dalek::VerifyingKey],
) -> Result<exhibit_common::VerifiedBundle, VerifyError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.exhibit.tar.zst");
    std::fs::write(&p, bytes).unwrap();
    verify(
        &p,
        &VerifyOptions {
            keys: keys.to_vec(),
            max_decompressed: None,
        },
    )
}

/// (name, header start, data start, data end) of every member of a tar stream.
fn spans(tar: &[u8]) -> Vec<(String, usize, usize, usize)> {
    tamper::spans(tar)
        .into_iter()
        .map(|s| (s.name(), s.start, s.data, s.end))
        .collect()
}

/// The span of the member called `name`.
fn span_of(tar: &[u8], name: &str) -> (String, usize, usize, usize) {
    spans(tar)
        .into_iter()
        .find(|s| s.0 == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

fn expect_invalid(r: Result<exhibit_common::VerifiedBundle, VerifyError>, what: &str) -> String {
    match r {
        Err(e @ VerifyError::Invalid(_)) => {
            assert_eq!(e.exit_code(), 3);
            e.to_string()
        }
        Err(e) => panic!("{what}: expected a verification failure, got I/O error {e}"),
        Ok(_) => panic!("{what}: tampered bundle verified"),
    }
}

#[test]
fn written_bundle_verifies_and_reads_back() {
    let k = keys::generate().unwrap();
    let b = sample(Some(&k));
    let v = verify_bytes(&b, &[k.verifying_key()]).unwrap();
    assert!(matches!(v.signer(), SignerStatus::Verified { .. }));
    // The file's own sha256 comes from the verifying pass and is that of every byte.
    assert_eq!(
        v.file_sha256().unwrap(),
        exhibit_common::hashing::sha256_hex(&b)
    );
    assert_eq!(v.content_entries(), 5);
    assert_eq!(v.manifest().counts.trees["rootfs"].entries, 5);
    assert_eq!(v.manifest().counts.trees["rootfs"].bytes, 3005);
    let recs: Vec<ChangeRecord> = v.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(
        recs[1].sha256.as_deref(),
        Some(exhibit_common::hashing::sha256_hex(&[b'x'; 3000]).as_str())
    );
    assert_eq!(recs[3].member.as_bytes()[11], 0xff);
    let mut seen = Vec::new();
    v.walk_content(&mut |r, body| {
        let mut b = Vec::new();
        body.read_to_end(&mut b)?;
        seen.push((r.path.clone(), b.len()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[1].1, 3000);
    assert_eq!(
        v.member("exhibit/host.json").unwrap().unwrap(),
        br#"{"hostname":"h"}"#
    );
    // GNU tar (and any POSIX tar reader) lists it.
    let plain = decompress(&b);
    let mut a = tar::Archive::new(&plain[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect();
    assert_eq!(names.last().unwrap(), "exhibit/manifest.dsse.json");
    assert!(names.contains(&"rootfs/tmp/payload".to_string()));
}

#[test]
fn a_flipped_byte_in_any_member_fails_naming_it() {
    let k = keys::generate().unwrap();
    let tar = decompress(&sample(Some(&k)));
    for (name, _, data, end) in spans(&tar) {
        if data == end {
            continue;
        }
        let mut t = tar.clone();
        t[data + (end - data) / 2] ^= 0x01;
        let msg = expect_invalid(verify_bytes(&compress(&t), &[k.verifying_key()]), &name);
        let shown = if name.starts_with("rootfs/tmp/\u{fffd}") {
            "rootfs/tmp/".to_string()
        } else {
            name.clone()
        };
        assert!(
            msg.contains(&shown) || name.ends_with("manifest.dsse.json"),
            "{name}: {msg}"
        );
    }
}

#[test]
fn flipped_header_bytes_fail() {
    let k = keys::generate().unwrap();
    let tar = decompress(&sample(Some(&k)));
    for (name, hs, data, _) in spans(&tar) {
        // Flip the mode field (checksum then fails) and, separately, re-checksum a changed
        // mode so only the record comparison can catch it.
        let mut t = tar.clone();
        let h = data - 512;
        t[h + 100 + 3] ^= 0x01;
        expect_invalid(verify_bytes(&compress(&t), &[k.verifying_key()]), &name);
        let mut t = tar.clone();
        t[h + 100 + 5] = if t[h + 100 + 5] == b'7' { b'5' } else { b'7' };
        tamper::rechecksum(&mut t[h..h + 512]);
        expect_invalid(
            verify_bytes(&compress(&t), &[k.verifying_key()]),
            &format!("{name} (re-checksummed)"),
        );
        let _ = hs;
    }
}

#[test]
#[allow(clippy::needless_range_loop)] // indexes two parallel lists
fn removed_duplicated_added_or_reordered_members_fail() {
    let k = keys::generate().unwrap();
    let tar = decompress(&sample(Some(&k)));
    let sp = spans(&tar);
    let block = |i: usize| -> Vec<u8> {
        let (_, hs, data, end) = &sp[i];
        let padded = data + (end - data).div_ceil(512) * 512;
        tar[*hs..padded].to_vec()
    };
    let rebuild = |order: &[usize], extra: Option<Vec<u8>>| {
        let mut t: Vec<u8> = order.iter().flat_map(|&i| block(i)).collect();
        if let Some(x) = extra {
            t.extend(x);
        }
        t.extend([0u8; 1024]);
        compress(&t)
    };
    let all: Vec<usize> = (0..sp.len()).collect();
    for i in 0..sp.len() - 1 {
        let removed: Vec<usize> = all.iter().copied().filter(|&j| j != i).collect();
        expect_invalid(
            verify_bytes(&rebuild(&removed, None), &[k.verifying_key()]),
            &format!("remove {}", sp[i].0),
        );
        let mut dup = all.clone();
        dup.insert(i, i);
        expect_invalid(
            verify_bytes(&rebuild(&dup, None), &[k.verifying_key()]),
            &format!("duplicate {}", sp[i].0),
        );
    }
    let mut swapped = all.clone();
    swapped.swap(0, 1);
    expect_invalid(
        verify_bytes(&rebuild(&swapped, None), &[k.verifying_key()]),
        "swap",
    );
    // An extra content entry after the envelope, and one before it.
    let extra = block(sp.iter().position(|s| s.0 == "rootfs/tmp/payload").unwrap());
    expect_invalid(
        verify_bytes(&rebuild(&all, Some(extra.clone())), &[k.verifying_key()]),
        "extra after",
    );
    let mut with_extra: Vec<u8> = all[..6].iter().flat_map(|&i| block(i)).collect();
    with_extra.extend(extra);
    with_extra.extend(all[6..].iter().flat_map(|&i| block(i)));
    with_extra.extend([0u8; 1024]);
    expect_invalid(
        verify_bytes(&compress(&with_extra), &[k.verifying_key()]),
        "extra inside",
    );
    // Untouched rebuild still verifies (the harness itself is sound).
    verify_bytes(&rebuild(&all, None), &[k.verifying_key()]).unwrap();
}

#[test]
fn truncation_at_every_kib_fails_without_panic() {
    let k = keys::generate().unwrap();
    let b = sample(Some(&k));
    let tar = decompress(&b);
    for cut in (0..b.len()).step_by(64) {
        expect_invalid(
            verify_bytes(&b[..cut], &[k.verifying_key()]),
            &format!("compressed cut {cut}"),
        );
    }
    for cut in (0..tar.len() - 1024).step_by(1024) {
        expect_invalid(
            verify_bytes(&compress(&tar[..cut]), &[k.verifying_key()]),
            &format!("tar cut {cut}"),
        );
    }
    let mut trailing = tar.clone();
    trailing.extend(b"garbage");
    expect_invalid(verify_bytes(&compress(&trailing), &[]), "trailing bytes");
}

#[test]
fn wrong_key_swapped_type_and_unsigned() {
    let k = keys::generate().unwrap();
    let other = keys::generate().unwrap();
    let b = sample(Some(&k));
    let msg = expect_invalid(verify_bytes(&b, &[other.verifying_key()]), "wrong key");
    assert!(msg.contains("signature"), "{msg}");
    // Without a key the hashes are still checked and the signer is unverified.
    let v = verify_bytes(&b, &[]).unwrap();
    assert!(matches!(v.signer(), SignerStatus::Unverified { .. }));

    let tar = decompress(&b);
    let sp = spans(&tar);
    let (_, hs, data, end) = sp.last().unwrap().clone();
    let mut env: Envelope = serde_json::from_slice(&tar[data..end]).unwrap();
    env.payload_type = "application/json".into();
    let body = serde_json::to_vec_pretty(&env).unwrap();
    let mut t = tar[..hs].to_vec();
    t.extend(exhibit_common::tarcodec::render(
        &exhibit_common::tarcodec::EntryHeader::metadata(
            "exhibit/manifest.dsse.json",
            body.len() as u64,
        ),
    ));
    t.extend(&body);
    t.extend(vec![
        0u8;
        exhibit_common::tarcodec::padding(body.len() as u64)
    ]);
    t.extend([0u8; 1024]);
    let msg = expect_invalid(
        verify_bytes(&compress(&t), &[k.verifying_key()]),
        "payloadType",
    );
    assert!(msg.contains("payloadType"), "{msg}");

    let unsigned = sample(None);
    let msg = expect_invalid(
        verify_bytes(&unsigned, &[k.verifying_key()]),
        "unsigned with key",
    );
    assert!(msg.contains("unsigned"), "{msg}");
    let v = verify_bytes(&unsigned, &[]).unwrap();
    assert_eq!(v.signer(), &SignerStatus::Unsigned);
}

#[test]
fn zstd_bomb_and_oversized_declarations_are_refused_quickly() {
    // 64 MiB of zeros compresses to almost nothing and is an end-of-archive followed by
    // endless padding: refused by the decompression cap.
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb");
    std::fs::write(&p, &bomb).unwrap();
    let r = verify(
        &p,
        &VerifyOptions {
            keys: vec![],
            max_decompressed: Some(8 << 20),
        },
    );
    assert!(matches!(r, Err(VerifyError::Invalid(_))));
    // Without the small cap the padding limit stops it just as early.
    let r = verify(&p, &VerifyOptions::default());
    let msg = expect_invalid(r, "zero bomb");
    assert!(msg.contains("after the end-of-archive"), "{msg}");
    // A member that declares more than the entry limit is refused at its header.
    let mut h = exhibit_common::tarcodec::render(&exhibit_common::tarcodec::EntryHeader::metadata(
        "exhibit/host.json",
        0,
    ));
    // 10 GiB does not fit in octal: base-256, as GNU tar writes it.
    h[124..136].fill(0);
    h[124] = 0x80;
    h[128..136].copy_from_slice(&(10u64 << 30).to_be_bytes());
    tamper::rechecksum(&mut h);
    let msg = expect_invalid(verify_bytes(&compress(&h), &[]), "10 GB member");
    assert!(msg.contains("over the entry limit"), "{msg}");
}

#[test]
fn garbage_in_entry_padding_fails() {
    let k = keys::generate().unwrap();
    let tar = decompress(&sample(Some(&k)));
    let (_, _, _, end) = span_of(&tar, "rootfs/tmp/payload");
    let mut t = tar.clone();
    t[end..end + 4].copy_from_slice(b"EVIL");
    let msg = expect_invalid(verify_bytes(&compress(&t), &[k.verifying_key()]), "padding");
    assert!(msg.contains("padding"), "{msg}");
}

#[test]
fn duplicates_dangling_hardlinks_and_bad_xattrs_fail_even_when_signed() {
    let k = keys::generate().unwrap();
    let build = |recs: Vec<ChangeRecord>| {
        let mut w = writer(3, 0);
        for r in recs {
            let body = vec![b'x'; r.stored_size as usize];
            w.add_content(r, Some(&mut &body[..]), |_, _| {}).unwrap();
        }
        seal(w, Some(&k))
    };
    let f = record(b"rootfs/a", b"/a", FileType::File, 3);
    let msg = expect_invalid(
        verify_bytes(&build(vec![f.clone(), f.clone()]), &[k.verifying_key()]),
        "duplicate",
    );
    assert!(msg.contains("duplicate"), "{msg}");
    let mut link = record(b"rootfs/b", b"/b", FileType::File, 0);
    link.hardlink_to = Some(ByteText(b"rootfs/../../etc/shadow".to_vec()));
    let msg = expect_invalid(
        verify_bytes(&build(vec![f.clone(), link]), &[k.verifying_key()]),
        "dangling hard link",
    );
    assert!(msg.contains("hard link"), "{msg}");
    let mut bad = f.clone();
    bad.xattrs = vec![exhibit_common::records::Xattr {
        name: ByteText(b"user.x".to_vec()),
        value_b64: "!!not base64".into(),
    }];
    expect_invalid(
        verify_bytes(&build(vec![bad]), &[k.verifying_key()]),
        "bad xattr",
    );
    // A whiteout never carries bytes, whatever its record claims.
    let mut wh = record(b"rootfs/.wh.c", b"/c", FileType::Whiteout, 5);
    wh.kind = ChangeKind::Deleted;
    let v = verify_bytes(&build(vec![wh]), &[k.verifying_key()]).unwrap();
    let r: Vec<ChangeRecord> = v.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(r[0].stored_size, 0);
    // A good hard link verifies.
    let mut link = record(b"rootfs/b", b"/b", FileType::File, 0);
    link.hardlink_to = Some(ByteText(b"rootfs/a".to_vec()));
    verify_bytes(&build(vec![f, link]), &[k.verifying_key()]).unwrap();
}

#[test]
fn many_large_executables_do_not_exhaust_the_verifier() {
    let k = keys::generate().unwrap();
    let mut w = writer(1, 2);
    for i in 0..7u8 {
        let exe = vec![i; 16 << 20];
        let digest = exhibit_common::hashing::sha256_hex(&exe);
        w.add_member(&format!("exhibit/exe/{digest}"), &exe)
            .unwrap();
    }
    let b = seal(w, Some(&k));
    let v = verify_bytes(&b, &[k.verifying_key()]).unwrap();
    let name = v
        .member_digests()
        .keys()
        .find(|n| n.starts_with("exhibit/exe/"))
        .unwrap()
        .clone();
    assert_eq!(v.member(&name).unwrap().unwrap().len(), 16 << 20);
}

#[test]
fn a_broken_acquisition_chain_fails() {
    let k = keys::generate().unwrap();
    let mut w = writer(3, 0);
    let mut log = exhibit_common::custody::AcquisitionLog::new();
    log.record("a", exhibit_common::custody::Outcome::Ok, None, None);
    log.record("b", exhibit_common::custody::Outcome::Ok, None, None);
    let text = String::from_utf8(log.bytes().to_vec()).unwrap();
    let second_only = format!("{}\n", text.lines().nth(1).unwrap());
    w.add_member("exhibit/acquisition.jsonl", second_only.as_bytes())
        .unwrap();
    let b = w.finish(manifest(), Some(&k)).unwrap().0;
    let msg = expect_invalid(verify_bytes(&b, &[k.verifying_key()]), "chain");
    assert!(msg.contains("acquisition"), "{msg}");
}

#[test]
fn exactly_one_zstd_frame_and_nothing_after_it() {
    // Bytes no signature covers never travel inside a bundle that verifies: garbage, a
    // skippable frame before or after the data frame, and a second frame all fail.
    let k = keys::generate().unwrap();
    let clean_bytes = sample(Some(&k));
    let clean = verify_bytes(&clean_bytes, &[k.verifying_key()]).unwrap();
    assert_eq!(
        clean.file_sha256().unwrap(),
        exhibit_common::hashing::sha256_hex(&clean_bytes)
    );
    let mut skip = 0x184D_2A50u32.to_le_bytes().to_vec();
    skip.extend_from_slice(&8u32.to_le_bytes());
    skip.extend_from_slice(b"smuggled");

    let mut garbage = clean_bytes.clone();
    garbage.extend_from_slice(&[0u8; 4096]);
    let mut after = clean_bytes.clone();
    after.extend_from_slice(&skip);
    let mut before = skip.clone();
    before.extend_from_slice(&clean_bytes);
    let mut second = clean_bytes.clone();
    second.extend_from_slice(&zstd::encode_all(&[0u8; 1024][..], 3).unwrap());
    for (what, bytes, needle) in [
        ("trailing zeros", &garbage, "after the zstd frame"),
        ("skippable frame after", &after, "after the zstd frame"),
        ("second frame", &second, "after the zstd frame"),
        (
            "skippable frame before",
            &before,
            "does not start with a zstd frame",
        ),
    ] {
        let why = expect_invalid(verify_bytes(bytes, &[k.verifying_key()]), what);
        assert!(why.contains(needle), "{what}: {why}");
    }
}

#[test]
fn bytes_under_a_whiteout_and_xattr_names_with_eq_or_nul_fail() {
    let k = keys::generate().unwrap();
    // A whiteout's header is rendered with size 0 whatever its record says: an entry
    // that carries bytes (header re-checksummed, data block inserted) fails.
    let tar = decompress(&sample(Some(&k)));
    let (_, hs, data, _) = span_of(&tar, "rootfs/etc/.wh.motd");
    let h = data - 512;
    let mut t = tar[..data].to_vec();
    t[h + 124..h + 136].copy_from_slice(b"00000000005\0");
    tamper::rechecksum(&mut t[h..h + 512]);
    let mut block = b"EVIL!".to_vec();
    block.resize(512, 0);
    t.extend(block);
    t.extend(&tar[data..]);
    let msg = expect_invalid(
        verify_bytes(&compress(&t), &[k.verifying_key()]),
        "bytes under a whiteout",
    );
    assert!(msg.contains("rootfs/etc/.wh.motd"), "{msg}");
    assert!(msg.contains("header does not match"), "{msg}");
    let _ = hs;

    // Extended attribute names that a PAX record cannot carry faithfully.
    for name in [&b"user.a=b"[..], b"user.a\0b"] {
        let mut w = writer(3, 0);
        let mut f = record(b"rootfs/a", b"/a", FileType::File, 1);
        f.xattrs = vec![exhibit_common::records::Xattr {
            name: ByteText(name.to_vec()),
            value_b64: "eA==".into(),
        }];
        w.add_content(f, Some(&mut &b"x"[..]), |_, _| {}).unwrap();
        let b = seal(w, Some(&k));
        let msg = expect_invalid(
            verify_bytes(&b, &[k.verifying_key()]),
            &String::from_utf8_lossy(name),
        );
        assert!(msg.contains("extended attribute"), "{msg}");
    }
}

#[test]
fn the_writer_counts_the_envelope_among_the_exhibit_members() {
    // changes.jsonl, the manifest and the envelope are exhibit/ members too: with
    // 19,997 others the bundle has exactly 20,000 and is written; one more is refused
    // by the writer, as the verifier would refuse it.
    let write = |others: u32| {
        let mut w = writer(1, 0);
        for i in 0..others {
            w.add_member(&format!("exhibit/exe/{i:064x}"), b"").unwrap();
        }
        w.finish(manifest(), None)
    };
    assert!(write(19_997).is_ok());
    let Err(err) = write(19_998) else {
        panic!("20,001 exhibit/ members were written")
    };
    assert!(err.to_string().contains("exhibit/ member count"), "{err}");
}

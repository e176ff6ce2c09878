//! Version rules: older minors are read, newer minors and other majors are
//! refused with a message naming both versions, bad magic is refused.

mod common;
use common::*;
use snapfmt::header::HEADER_LEN;
use snapfmt::*;

/// The golden manifest with its header's version replaced.
fn with_version(major: u16, minor: u16) -> Vec<u8> {
    let bytes = std::fs::read(golden_dir().join("manifest.spm")).unwrap();
    let mut h = ObjectHeader::parse(&bytes).unwrap();
    h.version = FormatVersion { major, minor };
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&bytes[HEADER_LEN..]);
    out
}

fn open_with_manifest(manifest: &[u8]) -> Result<Image> {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    copy_dir(&golden_dir(), &img);
    std::fs::write(img.join("manifest.spm"), manifest).unwrap();
    Image::open(&img)
}

#[test]
fn newer_minor_is_refused_naming_both_versions() {
    let newer = FormatVersion {
        minor: FORMAT_VERSION.minor + 1,
        ..FORMAT_VERSION
    };
    let err = open_with_manifest(&with_version(newer.major, newer.minor))
        .err()
        .expect("must be refused");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Object {
                error: ObjectError::NewerMinor { .. },
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&newer.to_string())
            && msg.contains(&FORMAT_VERSION.to_string())
            && msg.contains("manifest.spm"),
        "{msg}"
    );
}

#[test]
fn other_major_is_refused_naming_both_versions() {
    for major in [0, 2] {
        let err = open_with_manifest(&with_version(major, 0))
            .err()
            .expect("must be refused");
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                Error::Object {
                    error: ObjectError::OtherMajor { .. },
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("{major}.0")) && msg.contains(&FORMAT_VERSION.to_string()),
            "{msg}"
        );
    }
}

#[test]
fn bad_magic_is_refused() {
    let mut bytes = with_version(1, 0);
    bytes[1] = b'X';
    let err = open_with_manifest(&bytes).err().expect("must be refused");
    assert!(
        matches!(
            err,
            Error::Object {
                error: ObjectError::BadMagic { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn older_minor_is_read_by_a_newer_reader() {
    // Every file of the 1.0 golden image, as a 1.3 reader would see it.
    let reader = FormatVersion { major: 1, minor: 3 };
    for f in files(&golden_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        let h = ObjectHeader::parse_as(&bytes, reader).unwrap();
        assert_eq!(h.version, FormatVersion { major: 1, minor: 0 });
    }
    // And the same reader refuses 1.4 and 2.0.
    let newer = with_version(1, 4);
    assert!(matches!(
        ObjectHeader::parse_as(&newer, reader),
        Err(ObjectError::NewerMinor { .. })
    ));
    let other = with_version(2, 0);
    assert!(matches!(
        ObjectHeader::parse_as(&other, reader),
        Err(ObjectError::OtherMajor { .. })
    ));
    // The current reader reads the 1.0 image and the one written at the
    // current version.
    assert!(Image::open(golden_dir()).is_ok());
    assert!(Image::open(golden_dir_v1_1()).is_ok());
    assert!(Image::open(golden_dir_v1_2()).is_ok());
}

/// A chunk file of the 1.2 golden image whose body is checked by XXH3.
fn xxh3_chunk() -> Vec<u8> {
    files(&golden_dir_v1_2())
        .into_iter()
        .map(|f| std::fs::read(f).unwrap())
        .find(|b| ObjectHeader::parse(b).is_ok_and(|h| h.flags & header::FLAG_XXH3 != 0))
        .expect("the 1.2 golden image has a zstd chunk")
}

#[test]
fn the_xxh3_flag_exists_from_1_2_on_and_only_for_chunks() {
    let chunk = xxh3_chunk();
    // A 1.1 file cannot set it (1.1 readers would not know it).
    let mut old = chunk.clone();
    old[10..12].copy_from_slice(&1u16.to_le_bytes());
    assert!(matches!(
        ObjectHeader::parse(&old),
        Err(ObjectError::UnknownFlags { .. })
    ));
    // A 1.1 reader refuses the 1.2 file by its version, before its flags.
    assert!(matches!(
        ObjectHeader::parse_as(&chunk, FormatVersion { major: 1, minor: 1 }),
        Err(ObjectError::NewerMinor { .. })
    ));
    // Outside a chunk it is refused: a manifest's checksum is the
    // image's identity and stays SHA-256.
    let mut manifest = std::fs::read(golden_dir_v1_2().join("manifest.spm")).unwrap();
    let flags = u16::from_le_bytes([manifest[14], manifest[15]]) | header::FLAG_XXH3;
    manifest[14..16].copy_from_slice(&flags.to_le_bytes());
    assert!(matches!(
        ObjectHeader::parse(&manifest),
        Err(ObjectError::FlagNotAllowed { .. })
    ));
    // Dropping the flag makes the (XXH3) checksum a wrong SHA-256.
    let mut plain = chunk.clone();
    let flags = u16::from_le_bytes([plain[14], plain[15]]) & !header::FLAG_XXH3;
    plain[14..16].copy_from_slice(&flags.to_le_bytes());
    assert!(matches!(
        snapfmt::object::check(&plain, ObjectKind::Chunk),
        Err(ObjectError::Checksum { .. })
    ));
    // A damaged body is caught by XXH3 before decompression.
    let mut bad = chunk.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        snapfmt::object::check(&bad, ObjectKind::Chunk),
        Err(ObjectError::Checksum { .. })
    ));
    assert!(snapfmt::object::check(&chunk, ObjectKind::Chunk).is_ok());
}

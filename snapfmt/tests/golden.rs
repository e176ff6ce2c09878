//! The golden image of format 1.0, committed in `fixtures/images/`, must be
//! readable by every future reader of major version 1. Never regenerate it
//! from this test.

mod common;
use common::*;
use snapfmt::sample::{SAMPLE_MODULE, SHARED_BASE_9, sample_page};
use snapfmt::*;

#[test]
fn golden_v1_reads_in_both_forms() {
    let mut digests = Vec::new();
    for path in [golden_dir(), golden_tar()] {
        assert_eq!(validate(&path), vec![], "{}", path.display());
        deep_read(&path).unwrap();
        let img = Image::open(&path).unwrap();
        let m = img.manifest();
        assert_eq!(m.format_version, FormatVersion { major: 1, minor: 0 });
        assert_eq!(m.task_zero, 7);
        assert_eq!(m.created.seconds, 1_700_000_000);
        assert_eq!(m.options.file_policy, FilePolicy::BackupOverwrite);
        assert_eq!(img.task_ids(), vec![7, 9]);
        assert!(m.checkpoint_set.iter().any(|s| s.role
            == Role::Cooperative {
                service_id: "spartan.vfs".into()
            }));
        let t7 = img.task(7).unwrap();
        assert_eq!(t7.meta.args, vec!["counter", "--start", "5"]);
        assert_eq!(t7.phones[1], PhoneSlot::Free);
        assert_eq!(t7.calls.len(), 6);
        assert_eq!(t7.threads[1].active_sync_call, Some(6));
        assert_eq!(t7.coop_blobs[0].data, b"open /data/score pos=17");
        assert_eq!(img.module(&t7.meta.module.sha256()).unwrap(), SAMPLE_MODULE);
        assert_eq!(
            img.file_backup(&t7.file_backups[0].sha256).unwrap(),
            b"high score: 4200\n"
        );
        let mut page = [0u8; PAGE_SIZE];
        assert_eq!(
            img.read_page(7, 0x6000, &mut page).unwrap(),
            PageSource::Local
        );
        assert_eq!(page.as_slice(), sample_page(1));
        assert_eq!(
            img.read_page(7, 0x2000, &mut page).unwrap(),
            PageSource::Zero
        );
        img.read_page(9, SHARED_BASE_9, &mut page).unwrap();
        assert_eq!(page.as_slice(), sample_page(100));
        digests.push(img.manifest_digest());
    }
    assert_eq!(
        digests[0], digests[1],
        "the tar twin holds the same manifest"
    );
}

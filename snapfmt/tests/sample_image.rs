//! Writes the sample image in both forms and reads everything back.

use snapfmt::sample::{self, SAMPLE_MODULE, SHARED_BASE_7, SHARED_BASE_9, sample_page};
use snapfmt::*;

fn opts(form: ImageForm, chunk_pages: u32) -> WriterOptions {
    WriterOptions {
        form,
        chunk_pages,
        threads: 2,
        ..WriterOptions::default()
    }
}

#[test]
fn sample_round_trips_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    for (name, form) in [("img", ImageForm::Directory), ("img.tar", ImageForm::Tar)] {
        for chunk_pages in [1, 3, 64] {
            let path = dir.path().join(format!("{chunk_pages}-{name}"));
            let done = sample::write_sample(&path, opts(form, chunk_pages)).unwrap();
            assert_eq!(done.stats.pages_fed, 15);
            assert_eq!(done.stats.zero_pages, 2);
            assert_eq!(done.stats.duplicate_pages, 3);
            assert_eq!(validate(&path), vec![]);
            let img = Image::open(&path).unwrap();
            assert_eq!(img.manifest_digest(), done.manifest_digest);
            assert_eq!(img.task_ids(), vec![7, 9]);
            let t7 = img.task(7).unwrap();
            assert_eq!(t7.meta.args[1], "--start");
            assert_eq!(img.module(&t7.meta.module.sha256()).unwrap(), SAMPLE_MODULE);
            let mut page = [0u8; PAGE_SIZE];
            assert_eq!(
                img.read_page(7, 4096 + 5, &mut page).unwrap(),
                PageSource::Local
            );
            assert_eq!(page.as_slice(), sample_page(1));
            assert_eq!(
                img.read_page(7, 6 * 4096, &mut page).unwrap(),
                PageSource::Local
            );
            assert_eq!(page.as_slice(), sample_page(1));
            assert_eq!(
                img.read_page(7, 2 * 4096, &mut page).unwrap(),
                PageSource::Zero
            );
            assert!(page.iter().all(|&b| b == 0));
            img.read_page(9, SHARED_BASE_9 + 4096, &mut page).unwrap();
            assert_eq!(page.as_slice(), sample_page(101));
            img.read_page(7, SHARED_BASE_7, &mut page).unwrap();
            assert_eq!(page.as_slice(), sample_page(100));
            assert!(matches!(
                img.read_page(7, 8 * 4096, &mut page),
                Err(Error::NotMapped { .. })
            ));
            // Bulk reading agrees with page-by-page reading.
            for id in img.task_ids() {
                let t = img.task(id).unwrap();
                for area in &t.areas {
                    for threads in [1, 2] {
                        let mut n = 0;
                        img.for_each_page(area, threads, |i, p| {
                            assert_eq!(i, n);
                            let mut one = [0u8; PAGE_SIZE];
                            img.read_area_page(area, i, &mut one)?;
                            assert_eq!(p, one.as_slice());
                            n += 1;
                            Ok(())
                        })
                        .unwrap();
                        assert_eq!(u64::from(n), area.size / PAGE_SIZE as u64);
                    }
                }
            }
            let stats = img.stats().unwrap();
            assert_eq!(stats.mapped_pages, 13);
            assert_eq!(stats.local_content_bytes, 10 * 4096);
        }
    }
}

#[test]
fn refuses_to_overwrite_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    sample::write_sample(&path, opts(ImageForm::Directory, 4)).unwrap();
    let again = sample::write_sample(&path, opts(ImageForm::Directory, 4));
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let o = WriterOptions {
        overwrite: true,
        ..opts(ImageForm::Tar, 4)
    };
    sample::write_sample(&path, o).unwrap();
    assert!(path.is_file());
    assert_eq!(validate(&path), vec![]);
    // Nothing but the image is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("img")]);
}

//! Human-readable text of a [`crate::show::Overview`].

use std::fmt::Write;

use spartan_cli::escape;

use super::bytes;

use crate::show::{Overview, TaskView};

/// The whole overview: image header, memory and storage, then each task.
pub fn overview(o: &Overview) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image        {}", escape(&o.image));
    let _ = writeln!(
        s,
        "format       {}   written by {}",
        o.format_version,
        escape(&o.tool_version)
    );
    let _ = writeln!(
        s,
        "kernel       ABI {}, build {}",
        o.kernel_abi_version, o.kernel_build_hash
    );
    let _ = writeln!(
        s,
        "created      {} ({}.{:09} s)   task zero {}",
        super::utc(o.created_seconds),
        o.created_seconds,
        o.created_nanos,
        o.task_zero
    );
    let opt = &o.options;
    let mut extra: Vec<String> = opt
        .extra
        .iter()
        .map(|(k, v)| escape(&format!("{k}={v}")).into_owned())
        .collect();
    extra.insert(0, format!("timeout {} ms", opt.timeout_ms));
    let _ = writeln!(
        s,
        "options      files {}, {}, {}, {}",
        opt.file_policy,
        if opt.kill_after {
            "killed after"
        } else {
            "left running"
        },
        if opt.bundle_modules {
            "modules bundled"
        } else {
            "modules by path"
        },
        extra.join(", ")
    );
    if o.parent_chain.is_empty() {
        let _ = writeln!(s, "parent chain none (full image)");
    } else {
        let _ = writeln!(
            s,
            "parent chain (nearest first; {} pages stored in this image)",
            o.own_pages
        );
        for (i, l) in o.parent_chain.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. {}  manifest {}  {} pages",
                i + 1,
                escape(&l.path),
                l.manifest_digest,
                l.pages
            );
        }
    }
    let _ = writeln!(s, "checkpoint set");
    for m in &o.checkpoint_set {
        let role = match &m.service_id {
            Some(id) => format!("{} (service {})", m.role, escape(id)),
            None => m.role.to_string(),
        };
        let _ = writeln!(s, "  task {:<6} {:<16} {role}", m.task_id, escape(&m.name));
    }
    let b = &o.bytes;
    let _ = writeln!(
        s,
        "memory       areas {}; {} pages with content = {} raw ({} of them in the parent chain)",
        bytes(b.area_bytes),
        b.mapped_pages,
        bytes(b.raw_page_bytes),
        b.parent_pages
    );
    let _ = writeln!(
        s,
        "stored       {} chunks: {} distinct page content -> {}; other files {}; total {}",
        b.local_chunks,
        bytes(b.local_content_bytes),
        bytes(b.chunk_stored_bytes),
        bytes(b.other_stored_bytes),
        bytes(b.total_stored_bytes)
    );
    for t in &o.tasks {
        s.push('\n');
        task(&mut s, t);
    }
    s
}

fn task(s: &mut String, t: &TaskView) {
    let _ = writeln!(
        s,
        "task {} \"{}\"  args {:?}  cwd {}",
        t.task_id,
        escape(&t.name),
        t.args,
        escape(&t.cwd)
    );
    let _ = writeln!(s, "  module     {}", escape(&t.module.text()));
    let _ = writeln!(s, "  threads ({})", t.threads.len());
    for th in &t.threads {
        let at = match th.innermost {
            Some(p) => format!("func {} at {:#x}", p.func_index, p.code_offset),
            None => "no frames".into(),
        };
        let mut line = format!(
            "    thread {:<4} {:<10} {at}, {} frame(s), syscall {}, fuel {}",
            th.thread_id, th.suspension, th.frames, th.syscall, th.fuel_left
        );
        if !th.suspension_detail.is_empty() {
            let _ = write!(line, ", {}", escape(&th.suspension_detail));
        }
        if let Some(c) = th.active_sync_call {
            let _ = write!(line, ", awaits sync call {c}");
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "  areas ({})", t.areas.len());
    let _ = writeln!(
        s,
        "    {:<12} {:<12} {:<5} {:>7} {:>7} {:>7}  backing / sharing",
        "base", "size", "flags", "stored", "parent", "zero"
    );
    for a in &t.areas {
        let sharing: Vec<String> = a
            .sharing
            .iter()
            .map(|s| {
                format!(
                    "shared with {} at {:#x}",
                    escape(&s.with.to_string()),
                    s.base
                )
            })
            .collect();
        let mut tail = a.backing.text();
        if !sharing.is_empty() {
            let _ = write!(tail, "; {}", sharing.join(", "));
        }
        let _ = writeln!(
            s,
            "    {:<12} {:<12} {:<5} {:>7} {:>7} {:>7}  {tail}",
            format!("{:#x}", a.base),
            format!("{:#x}", a.size),
            a.flags,
            a.stored_pages,
            a.parent_pages,
            a.zero_pages
        );
    }
    let _ = writeln!(s, "  phones ({} slots)", t.phones.len());
    for p in &t.phones {
        let _ = writeln!(s, "    {:<4} {}", p.phone, escape(&p.text()));
    }
    let _ = writeln!(s, "  pending calls ({})", t.calls.len());
    for c in &t.calls {
        let _ = writeln!(s, "    {}", escape(&c.text()));
    }
    let blobs: usize = t.coop_blobs.values().map(Vec::len).sum();
    let _ = writeln!(s, "  cooperative blobs ({blobs})");
    for (service, list) in &t.coop_blobs {
        let conns: Vec<String> = list
            .iter()
            .map(|b| format!("phone {}: {} B", b.connection, b.len))
            .collect();
        let _ = writeln!(s, "    {}: {}", escape(service), conns.join(", "));
    }
    if !t.file_backups.is_empty() {
        let _ = writeln!(s, "  files ({})", t.file_backups.len());
        for f in &t.file_backups {
            let _ = writeln!(
                s,
                "    {}  {}, {} B, {}",
                escape(&f.path),
                f.policy,
                f.size,
                if f.stored {
                    "content stored"
                } else {
                    "not stored"
                }
            );
        }
    }
    match &t.kernel_state {
        None => {
            let _ = writeln!(s, "  kernel state none");
        }
        Some(k) => {
            let _ = writeln!(s, "  kernel state {}", k.counters_text());
            for (key, text) in k.entries().into_iter().skip(1) {
                let _ = writeln!(s, "    {key:<32} {}", escape(&text));
            }
        }
    }
    if !t.id_view.is_empty() {
        let ids: Vec<String> = t
            .id_view
            .iter()
            .map(|i| format!("{} -> {}", i.seen, escape(&i.refers_to.to_string())))
            .collect();
        let _ = writeln!(s, "  id view    {}", ids.join(", "));
    }
}

//! Human-readable text of a [`crate::diff::DiffReport`].
//!
//! Lines start with `-` for what is only in the first image, `+` for what
//! is only in the second and `~` for what changed, like a unified diff.

use std::fmt::Write;

use serde_json::Value as Json;
use spartan_cli::escape;

use crate::diff::task::TaskDiff;
use crate::diff::{DiffReport, FieldChange};
use crate::hexdump;

/// Fields whose numbers are addresses or sizes, shown in hex.
const HEX_FIELDS: [&str; 1] = ["size"];

/// One side of a change of `field`: text as it is, `-` for an absent
/// field, other values as compact JSON; escaped.
fn value(field: &str, v: &Json) -> String {
    match v {
        Json::Null => "-".into(),
        Json::Number(n) if HEX_FIELDS.contains(&field) && n.is_u64() => {
            format!("{:#x}", n.as_u64().unwrap_or_default())
        }
        Json::String(s) => escape(s).into_owned(),
        other => escape(&other.to_string()).into_owned(),
    }
}

fn changes(s: &mut String, indent: &str, fields: &[FieldChange]) {
    for f in fields {
        let _ = writeln!(
            s,
            "{indent}~ {}: {} -> {}",
            escape(&f.field),
            value(&f.field, &f.a),
            value(&f.field, &f.b)
        );
    }
}

/// The whole report: a verdict line, then each difference.
pub fn diff(r: &DiffReport) -> String {
    let mut s = String::new();
    if r.identical {
        let _ = writeln!(s, "{} and {} are identical", escape(&r.a), escape(&r.b));
    } else {
        let _ = writeln!(s, "--- {}\n+++ {}", escape(&r.a), escape(&r.b));
    }
    if !r.manifest.is_empty() {
        let _ = writeln!(s, "manifest");
        changes(&mut s, "  ", &r.manifest);
    }
    for t in &r.tasks_removed {
        let _ = writeln!(
            s,
            "- task {} \"{}\" ({} threads, {} areas)",
            t.task_id,
            escape(&t.name),
            t.threads,
            t.areas
        );
    }
    for t in &r.tasks_added {
        let _ = writeln!(
            s,
            "+ task {} \"{}\" ({} threads, {} areas)",
            t.task_id,
            escape(&t.name),
            t.threads,
            t.areas
        );
    }
    for t in &r.tasks_changed {
        task(&mut s, t);
    }
    if !r.identical {
        let pages: u64 = r
            .tasks_changed
            .iter()
            .flat_map(|t| &t.areas.changed)
            .map(|a| a.pages.changed_pages)
            .sum();
        let _ = writeln!(
            s,
            "summary: {} manifest field(s), {} task(s) added, {} removed, {} changed; {pages} page(s) changed",
            r.manifest.len(),
            r.tasks_added.len(),
            r.tasks_removed.len(),
            r.tasks_changed.len()
        );
    }
    if let Some(h) = &r.hexdump {
        let _ = writeln!(
            s,
            "hexdump of task {} {:#x}..{:#x} (- {}, + {})",
            h.task,
            h.a.addr,
            u64::from(h.a.addr) + h.a.bytes.len() as u64,
            escape(&r.a),
            escape(&r.b)
        );
        s.push_str(&hexdump::dump_pair(h.a.addr, &h.a.bytes, &h.b.bytes));
    }
    s
}

fn task(s: &mut String, t: &TaskDiff) {
    let _ = writeln!(s, "~ task {} \"{}\"", t.task_id, escape(&t.name));
    changes(s, "    ", &t.meta);
    for id in &t.threads_removed {
        let _ = writeln!(s, "  - thread {id}");
    }
    for id in &t.threads_added {
        let _ = writeln!(s, "  + thread {id}");
    }
    for th in &t.threads_changed {
        let _ = writeln!(s, "  ~ thread {}", th.thread_id);
        changes(s, "      ", &th.fields);
    }
    for a in &t.areas.removed {
        let _ = writeln!(
            s,
            "  - area {:#x} size {:#x} {} ({} stored pages)",
            a.base, a.size, a.flags, a.stored_pages
        );
    }
    for a in &t.areas.added {
        let _ = writeln!(
            s,
            "  + area {:#x} size {:#x} {} ({} stored pages)",
            a.base, a.size, a.flags, a.stored_pages
        );
    }
    for a in &t.areas.changed {
        let _ = writeln!(s, "  ~ area {:#x}", a.base);
        changes(s, "      ", &a.fields);
        if a.pages.changed_pages > 0 {
            let _ = writeln!(s, "      {} page(s) changed:", a.pages.changed_pages);
            for r in &a.pages.ranges {
                let _ = writeln!(
                    s,
                    "        {:#x}..{:#x} ({} page(s); bytes differ in {:#x}..{:#x})",
                    r.start, r.end, r.pages, r.first_diff, r.last_diff_end
                );
            }
        }
    }
    for p in &t.phones {
        let side = |v: &Option<crate::view::PhoneView>| {
            v.as_ref()
                .map(|v| escape(&v.text()).into_owned())
                .unwrap_or_else(|| "no slot".into())
        };
        let _ = writeln!(s, "  ~ phone {}: {} -> {}", p.phone, side(&p.a), side(&p.b));
    }
    for c in &t.calls_removed {
        let _ = writeln!(s, "  - call {}", escape(&c.text()));
    }
    for c in &t.calls_added {
        let _ = writeln!(s, "  + call {}", escape(&c.text()));
    }
    for b in &t.blobs {
        let side = |v: &Option<crate::view::BlobView>| {
            v.as_ref()
                .map(|v| format!("{} B sha256 {}", v.len, &v.sha256[..12.min(v.sha256.len())]))
                .unwrap_or_else(|| "none".into())
        };
        let _ = writeln!(
            s,
            "  ~ blob {} phone {}: {} -> {}",
            escape(&b.service_id),
            b.connection,
            side(&b.a),
            side(&b.b)
        );
    }
    for f in &t.files {
        let side = |v: &Option<crate::view::FileView>| {
            v.as_ref()
                .map(|v| {
                    format!(
                        "{} {} B sha256 {}",
                        v.policy,
                        v.size,
                        &v.sha256[..12.min(v.sha256.len())]
                    )
                })
                .unwrap_or_else(|| "none".into())
        };
        let _ = writeln!(
            s,
            "  ~ file {}: {} -> {}",
            escape(&f.path),
            side(&f.a),
            side(&f.b)
        );
    }
    changes(s, "  ", &t.kernel_state);
}

//! Connections from clients left out of a checkpoint set (thesis 4.4.3,
//! the checkpointer's "exclude" choice): the members they were connected
//! to must see them gone after a restore. A capture lists them, and the
//! manifest's `options.extra` carries the list under [`EXCLUDED_KEY`]
//! (`snapfmt/FORMAT.md` section 4, "Kernel entries"): space-separated
//! `member:conn:client` triples in decimal, the member's task id in the
//! image, the receiver-side id of the connection, and the client's task
//! id. A restore sends each member an `IPC_M_PHONE_HUNGUP` on each such
//! connection, from the client's ghost, after the calls the image holds
//! (so the member handles what the client sent, then its hangup).

use std::collections::{BTreeMap, BTreeSet};

use crate::ipc::ConnId;
use crate::task::TaskId;

/// Key of the excluded clients' connections.
pub const EXCLUDED_KEY: &str = "kernel.excluded_clients";

/// A connection to a member from a client outside the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExcludedConn {
    pub member: TaskId,
    pub conn: ConnId,
    pub client: TaskId,
}

/// Writes the list into `extra` (nothing when it is empty).
pub fn put(list: &[ExcludedConn], extra: &mut BTreeMap<String, String>) {
    if list.is_empty() {
        return;
    }
    let words: Vec<String> = list
        .iter()
        .map(|e| format!("{}:{}:{}", e.member.0, e.conn.0, e.client.0))
        .collect();
    extra.insert(EXCLUDED_KEY.into(), words.join(" "));
}

/// Reads the list of `extra` (empty when absent); an error names what is
/// wrong. `members` are the set's task ids: every member named must be
/// one, and no client may be.
pub fn from_extra(
    extra: &BTreeMap<String, String>,
    members: &BTreeSet<u64>,
) -> Result<Vec<ExcludedConn>, String> {
    let Some(v) = extra.get(EXCLUDED_KEY) else {
        return Ok(Vec::new());
    };
    let number = |w: &str| {
        w.parse::<u64>()
            .ok()
            .filter(|n| !w.starts_with('+') && (w == "0" || !w.starts_with('0')) && *n < 1 << 63)
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for word in v.split(' ') {
        let parts: Vec<Option<u64>> = word.split(':').map(number).collect();
        let [Some(member), Some(conn), Some(client)] = parts[..] else {
            return Err(format!(
                "options.extra {EXCLUDED_KEY:?}: {word:?} is not member:conn:client in decimal"
            ));
        };
        if !members.contains(&member) {
            return Err(format!(
                "options.extra {EXCLUDED_KEY:?}: task {member} is not a member of the set"
            ));
        }
        if members.contains(&client) {
            return Err(format!(
                "options.extra {EXCLUDED_KEY:?}: client {client} is a member of the set"
            ));
        }
        if !seen.insert((member, conn)) {
            return Err(format!(
                "options.extra {EXCLUDED_KEY:?}: connection {conn} of task {member} is listed twice"
            ));
        }
        out.push(ExcludedConn {
            member: TaskId(member),
            conn: ConnId(conn),
            client: TaskId(client),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_back_and_bad_entries_are_named() {
        let list = vec![
            ExcludedConn {
                member: TaskId(3),
                conn: ConnId(7),
                client: TaskId(9),
            },
            ExcludedConn {
                member: TaskId(4),
                conn: ConnId(1),
                client: TaskId(9),
            },
        ];
        let mut extra = BTreeMap::new();
        put(&list, &mut extra);
        assert_eq!(extra[EXCLUDED_KEY], "3:7:9 4:1:9");
        let members = BTreeSet::from([3, 4]);
        assert_eq!(from_extra(&extra, &members).unwrap(), list);
        put(&[], &mut BTreeMap::new());
        for (bad, why) in [
            ("3:7", "not member:conn:client"),
            ("3:07:9", "not member:conn:client"),
            ("5:1:9", "not a member"),
            ("3:1:4", "is a member"),
            ("3:1:9 3:1:8", "listed twice"),
            ("", "not member:conn:client"),
        ] {
            let extra = BTreeMap::from([(EXCLUDED_KEY.to_string(), bad.to_string())]);
            let e = from_extra(&extra, &members).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}

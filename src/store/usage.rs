//! Usage counters and session records: the in-memory [`Batch`] the event
//! loop fills and the writer commits, and the queries behind `btestd usage`.

use super::config::clamp_i64;
use super::error::Result;
use super::{Store, get_u64};
use crate::proto::{Direction, Protocol};
use crate::quota::period::unix_secs;
use crate::quota::{Charge, Date, IpKey, Period, PeriodKey, QuotaConfig, Subject, UsageRow};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// One finished test, as the loop reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: Option<String>,
    pub peer_ip: IpAddr,
    pub proto: Protocol,
    /// From the command; stored in the server's words (receive, transmit, both).
    pub direction: Direction,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// Bytes the server received.
    pub rx_bytes: u64,
    /// Bytes the server transmitted.
    pub tx_bytes: u64,
    /// UDP packets the server expected but did not receive.
    pub lost_packets: u64,
    /// The loop's end reason (`peer-closed`, `quota-exhausted(...)`, ...).
    pub end_reason: String,
}

fn proto_str(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "receive",
        Direction::ServerToClient => "transmit",
        Direction::Both => "both",
    }
}

/// A session row ready for insertion; `merged` > 1 when several records
/// were folded together.
#[derive(Debug, Clone)]
struct PendingSession {
    user: Option<String>,
    peer_ip: IpAddr,
    proto: &'static str,
    direction: &'static str,
    started: i64,
    ended: i64,
    rx: u64,
    tx: u64,
    lost: u64,
    reason: String,
    merged: u64,
}

impl PendingSession {
    fn fold_key(&self) -> FoldKey {
        (self.user.clone(), self.peer_ip, self.proto, self.direction)
    }

    fn absorb(&mut self, o: &PendingSession) {
        self.started = self.started.min(o.started);
        self.ended = self.ended.max(o.ended);
        self.rx = self.rx.saturating_add(o.rx);
        self.tx = self.tx.saturating_add(o.tx);
        self.lost = self.lost.saturating_add(o.lost);
        self.merged = self.merged.saturating_add(o.merged);
        self.reason = MERGED_REASON.to_string();
    }
}

/// End reason of a row that stands for several sessions.
pub const MERGED_REASON: &str = "merged";

type FoldKey = (Option<String>, IpAddr, &'static str, &'static str);

/// Pending writes: usage deltas coalesced per (subject, local date) and
/// session records.
///
/// Memory is bounded without dropping anything: deltas keep one entry per
/// subject and date however many arrive; session records beyond
/// `session_cap` are folded into one row per (user, peer IP, protocol,
/// direction) that keeps the byte, loss and session counts and the time
/// span, losing only the individual start/end times.
#[derive(Debug)]
pub struct Batch {
    deltas: HashMap<(Subject, Date), [u64; 2]>,
    sessions: Vec<PendingSession>,
    folded: HashMap<FoldKey, PendingSession>,
    session_cap: usize,
}

impl Batch {
    pub fn new(session_cap: usize) -> Batch {
        Batch { deltas: HashMap::new(), sessions: Vec::new(), folded: HashMap::new(), session_cap }
    }

    /// Adds `rx`/`tx` bytes to `subject` on `date` (the date in the
    /// configured zone; week and month follow from it).
    pub fn add_delta(&mut self, subject: Subject, date: Date, rx: u64, tx: u64) {
        if rx == 0 && tx == 0 {
            return;
        }
        let e = self.deltas.entry((subject, date)).or_insert([0; 2]);
        e[0] = e[0].saturating_add(rx);
        e[1] = e[1].saturating_add(tx);
    }

    /// Adds what the ledger charged to its user-or-anonymous subject and
    /// its client address, on its date.
    pub fn add_charge(&mut self, c: &Charge) {
        self.add_delta(c.subject.clone(), c.date, c.rx, c.tx);
        self.add_delta(Subject::Ip(c.ip), c.date, c.rx, c.tx);
    }

    pub fn add_session(&mut self, r: SessionRecord) {
        self.push(PendingSession {
            user: r.user,
            peer_ip: r.peer_ip.to_canonical(),
            proto: proto_str(r.proto),
            direction: direction_str(r.direction),
            started: unix_secs(r.started),
            ended: unix_secs(r.ended),
            rx: r.rx_bytes,
            tx: r.tx_bytes,
            lost: r.lost_packets,
            reason: r.end_reason,
            merged: 1,
        });
    }

    fn push(&mut self, p: PendingSession) {
        if self.sessions.len() < self.session_cap {
            self.sessions.push(p);
            return;
        }
        match self.folded.get_mut(&p.fold_key()) {
            Some(f) => f.absorb(&p),
            None => {
                let mut f = p.clone();
                f.reason = MERGED_REASON.to_string();
                self.folded.insert(p.fold_key(), f);
            }
        }
    }

    /// Moves everything in `other` into this batch.
    pub fn merge(&mut self, other: Batch) {
        if self.is_empty() && other.session_cap == self.session_cap {
            *self = other;
            return;
        }
        for ((s, d), [rx, tx]) in other.deltas {
            self.add_delta(s, d, rx, tx);
        }
        for p in other.sessions {
            self.push(p);
        }
        for (k, p) in other.folded {
            match self.folded.get_mut(&k) {
                Some(f) => f.absorb(&p),
                None => {
                    self.folded.insert(k, p);
                }
            }
        }
    }

    /// Moves everything into `dst`, keeping this batch's allocations for
    /// reuse (the loop's local batch stays allocation-free when warm).
    pub fn drain_into(&mut self, dst: &mut Batch) {
        for ((s, d), [rx, tx]) in self.deltas.drain() {
            dst.add_delta(s, d, rx, tx);
        }
        for p in self.sessions.drain(..) {
            dst.push(p);
        }
        for (k, p) in self.folded.drain() {
            match dst.folded.get_mut(&k) {
                Some(f) => f.absorb(&p),
                None => {
                    dst.folded.insert(k, p);
                }
            }
        }
    }

    /// Takes the contents, leaving an empty batch with the same cap.
    pub fn take(&mut self) -> Batch {
        std::mem::replace(self, Batch::new(self.session_cap))
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty() && self.sessions.is_empty() && self.folded.is_empty()
    }

    /// Coalesced usage entries waiting (each becomes three period rows).
    pub fn pending_deltas(&self) -> usize {
        self.deltas.len()
    }

    /// Session records waiting, folded ones counted individually.
    pub fn pending_sessions(&self) -> u64 {
        self.sessions.len() as u64 + self.folded.values().map(|f| f.merged).sum::<u64>()
    }

    /// Writes everything; the caller wraps it in one transaction.
    pub(crate) fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO usage(scope, subject, period, period_key, rx, tx) VALUES(?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(scope, subject, period, period_key) DO UPDATE SET
                 rx = min(rx + excluded.rx, 9223372036854775807),
                 tx = min(tx + excluded.tx, 9223372036854775807)",
        )?;
        for ((subject, date), [rx, tx]) in &self.deltas {
            let (scope, column) = (subject.scope(), subject.column());
            for p in Period::ALL {
                upsert.execute(params![
                    scope,
                    column,
                    p.as_str(),
                    date.key(p).to_string(),
                    clamp_i64(*rx),
                    clamp_i64(*tx)
                ])?;
            }
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO sessions(user, peer_ip, proto, direction, started, ended, rx_bytes, tx_bytes,
                                  lost_packets, end_reason, merged)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for s in self.sessions.iter().chain(self.folded.values()) {
            insert.execute(params![
                s.user,
                s.peer_ip.to_string(),
                s.proto,
                s.direction,
                s.started,
                s.ended,
                clamp_i64(s.rx),
                clamp_i64(s.tx),
                clamp_i64(s.lost),
                s.reason,
                clamp_i64(s.merged)
            ])?;
        }
        Ok(())
    }
}

/// A stored session row, for `btestd usage --sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: i64,
    pub user: Option<String>,
    pub peer_ip: String,
    pub proto: String,
    pub direction: String,
    pub started: i64,
    pub ended: i64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub lost_packets: u64,
    pub end_reason: String,
    /// Sessions this row stands for (1 unless folded).
    pub merged: u64,
}

/// Which rows `btestd usage` shows.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub subject: Option<Subject>,
}

impl Store {
    /// Stored usage of the periods current at `now` (in `cfg`'s zone), for
    /// seeding the ledger.
    pub fn load_current_usage(&self, cfg: &QuotaConfig, now: SystemTime) -> Result<Vec<UsageRow>> {
        let keys = Date::in_zone(now, cfg.zone()).keys();
        self.usage_rows(&UsageFilter::default(), &keys)
    }

    /// Usage rows for the given period keys, optionally of one subject.
    pub fn usage_rows(&self, filter: &UsageFilter, keys: &[PeriodKey]) -> Result<Vec<UsageRow>> {
        let (scope, subject) = match &filter.subject {
            Some(s) => (Some(s.scope()), Some(s.column())),
            None => (None, None),
        };
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT scope, subject, rx, tx FROM usage
                 WHERE period = ?1 AND period_key = ?2 AND (?3 IS NULL OR (scope = ?3 AND subject = ?4))
                 ORDER BY scope DESC, subject",
            )
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for key in keys {
            let rows = stmt
                .query_map(params![key.period().as_str(), key.to_string(), scope, subject], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, get_u64(r, 2)?, get_u64(r, 3)?))
                })
                .map_err(|e| self.sql_err(e))?;
            for row in rows {
                let (scope, subject, rx, tx) = row.map_err(|e| self.sql_err(e))?;
                if let Some(subject) = Subject::from_columns(&scope, &subject) {
                    out.push(UsageRow { subject, key: *key, rx, tx });
                }
            }
        }
        Ok(out)
    }

    /// The most recent session records, newest first.
    pub fn recent_sessions(&self, user: Option<&str>, ip: Option<IpAddr>, limit: u32) -> Result<Vec<SessionInfo>> {
        let ip = ip.map(|i| i.to_canonical().to_string());
        self.query_all(
            "SELECT id, user, peer_ip, proto, direction, started, ended, rx_bytes, tx_bytes, lost_packets,
                        end_reason, merged
                 FROM sessions WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR peer_ip = ?2)
                 ORDER BY ended DESC, id DESC LIMIT ?3",
            params![user, ip, limit],
            |r| {
                Ok(SessionInfo {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    peer_ip: r.get(2)?,
                    proto: r.get(3)?,
                    direction: r.get(4)?,
                    started: r.get(5)?,
                    ended: r.get(6)?,
                    rx_bytes: get_u64(r, 7)?,
                    tx_bytes: get_u64(r, 8)?,
                    lost_packets: get_u64(r, 9)?,
                    end_reason: r.get(10)?,
                    merged: get_u64(r, 11)?,
                })
            },
        )
    }

    /// Deletes session records and daily usage older than `days` days, and
    /// weekly and monthly usage older than `days` or 400 days, whichever is
    /// longer. Returns the rows deleted.
    pub fn prune(&self, now: SystemTime, cfg: &QuotaConfig, days: u32) -> Result<usize> {
        let day = Duration::from_secs(86_400);
        let cutoff = now.checked_sub(day * days).unwrap_or(now);
        let long_cutoff = now.checked_sub(day * days.max(400)).unwrap_or(now);
        let (d, l) = (Date::in_zone(cutoff, cfg.zone()), Date::in_zone(long_cutoff, cfg.zone()));
        let sql = |e| self.sql_err(e);
        let mut n = self.conn().execute("DELETE FROM sessions WHERE ended < ?1", [unix_secs(cutoff)]).map_err(sql)?;
        for key in [d.key(Period::Day), l.key(Period::Week), l.key(Period::Month)] {
            n += self
                .conn()
                .execute(
                    "DELETE FROM usage WHERE period = ?1 AND period_key < ?2",
                    params![key.period().as_str(), key.to_string()],
                )
                .map_err(sql)?;
        }
        Ok(n)
    }
}

/// The subject a per-IP row of `ip` is kept under with `cfg`'s grouping.
pub fn ip_subject(ip: IpAddr, cfg: &QuotaConfig) -> Subject {
    Subject::Ip(IpKey::new(ip, cfg.ipv6_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn rec(user: &str, ip: &str, rx: u64) -> SessionRecord {
        SessionRecord {
            user: Some(user.to_string()),
            peer_ip: ip.parse().unwrap(),
            proto: Protocol::Tcp,
            direction: Direction::Both,
            started: UNIX_EPOCH + Duration::from_secs(100),
            ended: UNIX_EPOCH + Duration::from_secs(200),
            rx_bytes: rx,
            tx_bytes: 1,
            lost_packets: 0,
            end_reason: "peer-closed".into(),
        }
    }

    #[test]
    fn deltas_coalesce_per_subject_and_date() {
        let mut b = Batch::new(10);
        let d = Date { year: 2026, month: 11, day: 24 };
        for _ in 0..1000 {
            b.add_delta(Subject::Anonymous, d, 3, 4);
        }
        b.add_delta(Subject::Anonymous, d, 0, 0);
        assert_eq!(b.pending_deltas(), 1);
        assert_eq!(b.deltas[&(Subject::Anonymous, d)], [3000, 4000]);
    }

    #[test]
    fn a_charge_is_kept_under_its_own_subjects_and_date() {
        let mut b = Batch::new(10);
        let ip = IpKey::new("2001:db8:0:1ff::a".parse().unwrap(), 56);
        let date = Date { year: 2026, month: 11, day: 25 };
        let charge = Charge { subject: Subject::User("alice".into()), ip, date, rx: 5, tx: 6, exceeded: None };
        b.add_charge(&charge);
        b.add_charge(&charge);
        let mut got: Vec<_> = b.deltas.iter().map(|((s, d), v)| (s.clone(), *d, *v)).collect();
        got.sort();
        assert_eq!(got, [(Subject::User("alice".into()), date, [10, 12]), (Subject::Ip(ip), date, [10, 12])]);
    }

    #[test]
    fn sessions_past_the_cap_are_folded_not_dropped() {
        let mut b = Batch::new(2);
        for i in 0..5 {
            b.add_session(rec("alice", "192.0.2.1", i));
        }
        b.add_session(rec("bob", "192.0.2.1", 100));
        assert_eq!(b.sessions.len(), 2);
        assert_eq!(b.folded.len(), 2);
        assert_eq!(b.pending_sessions(), 6);
        let alice = b.folded.values().find(|f| f.user.as_deref() == Some("alice")).unwrap();
        assert_eq!((alice.merged, alice.rx, alice.reason.as_str()), (3, 2 + 3 + 4, MERGED_REASON));

        let mut other = Batch::new(2);
        other.add_session(rec("alice", "192.0.2.1", 1000));
        b.merge(other);
        assert_eq!(b.pending_sessions(), 7);
    }
}

//! Slowing down credential guessing: an address (after trusted proxies) whose credentials or
//! secret-URL guesses fail `max_failures_per_minute` times is answered 429 for `block_for`,
//! checked before any secret is compared. The table is bounded, so an attacker with many
//! addresses costs memory up to the cap and no more.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::ReceiveError;
use crate::config::AuthBlock;
use crate::telemetry::LogLimit;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once: about 5 MB at the cap.
const MAX_ENTRIES: usize = 100_000;
/// A full table is swept of stale entries at most this often, so a flood of new addresses
/// cannot turn every failure into a scan of the whole table.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct AuthBlocks {
    /// `None`: the block is turned off.
    config: Option<AuthBlock>,
    table: Mutex<Table>,
    /// When the latest block ends, in milliseconds after `epoch`: while it is past, no address
    /// is blocked and a request is let through without taking the lock.
    latest_end_ms: AtomicU64,
    epoch: Instant,
    blocked_log: LogLimit<()>,
}

#[derive(Debug)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    swept: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn is_stale(&self, now: Instant) -> bool {
        self.blocked_until.is_none_or(|until| until <= now)
            && now.saturating_duration_since(self.window_start) >= WINDOW
    }

    fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| until > now)
    }
}

impl AuthBlocks {
    pub(super) fn new(config: Option<AuthBlock>) -> Self {
        AuthBlocks {
            config,
            table: Mutex::new(Table { entries: HashMap::new(), swept: None }),
            latest_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            blocked_log: LogLimit::per_second(),
        }
    }

    /// 429 while `client` is blocked; called before its credentials are compared.
    pub(super) fn check(&self, client: IpAddr) -> Result<(), ReceiveError> {
        match self.blocked_for(client, Instant::now()) {
            Some(wait) => Err(ReceiveError::AuthBlocked { retry_after: whole_seconds(wait) }),
            None => Ok(()),
        }
    }

    /// Counts a failed credential or secret-URL guess from `client`.
    pub(super) fn failed(&self, client: IpAddr) {
        let Some(config) = self.config else { return };
        if let Some(failures) = self.fail_at(client, Instant::now())
            && let Some(left_out) = self.blocked_log.admit(())
        {
            tracing::warn!(
                client = %client,
                failures,
                block_secs = config.block_for.as_secs(),
                addresses_blocked_not_logged_since_last = left_out,
                "address blocked after repeated failed credentials"
            );
        }
    }

    /// How much longer `client` is blocked, if it is.
    fn blocked_for(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        self.config?;
        if self.ms_since_epoch(now) >= self.latest_end_ms.load(Ordering::Relaxed) {
            return None;
        }
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let until = table.entries.get(&key(client))?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; `Some(failures)` when it starts a block.
    fn fail_at(&self, client: IpAddr, now: Instant) -> Option<u32> {
        let config = self.config?;
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key(client);
        if !table.entries.contains_key(&key) && !table.make_room(now) {
            return None;
        }
        let entry = table.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if entry.is_blocked(now) {
            // Requests of a blocked address are refused before they get here; a guess that
            // was in flight when the block began does not lengthen it.
            return None;
        }
        if now.saturating_duration_since(entry.window_start) >= WINDOW {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures < config.max_failures_per_minute {
            return None;
        }
        let failures = entry.failures;
        let until = now + config.block_for;
        // Counting starts afresh after the block: `max_failures_per_minute` more guesses, then
        // another block.
        *entry = Entry { window_start: until, failures: 0, blocked_until: Some(until) };
        self.latest_end_ms.fetch_max(self.ms_since_epoch(until) + 1, Ordering::Relaxed);
        Some(failures)
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Table {
    /// Whether a new entry fits. A full table drops entries that have nothing left to say,
    /// then, if still full, every address not blocked now (at most a minute of its failures
    /// is forgotten); blocked addresses are kept. Failing that the new address is not
    /// tracked until the next sweep.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.entries.len() < MAX_ENTRIES {
            return true;
        }
        if self.swept.is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY) {
            return false;
        }
        self.swept = Some(now);
        self.entries.retain(|_, entry| !entry.is_stale(now));
        if self.entries.len() >= MAX_ENTRIES * 9 / 10 {
            self.entries.retain(|_, entry| entry.is_blocked(now));
        }
        self.entries.len() < MAX_ENTRIES
    }
}

/// The address a block applies to: an IPv6 client is its /64, the block one host is usually
/// given, so that an attacker cannot take a fresh address for every guess.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// `Retry-After` in whole seconds, rounded up so a retry never comes early.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(max: u32, block_secs: u64) -> AuthBlocks {
        AuthBlocks::new(Some(AuthBlock {
            max_failures_per_minute: max,
            block_for: Duration::from_secs(block_secs),
        }))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_nth_failure_within_a_minute_blocks_for_block_for() {
        let blocks = blocks(3, 60);
        let start = Instant::now();
        let client = ip("203.0.113.9");
        assert_eq!(blocks.fail_at(client, start), None);
        assert_eq!(blocks.fail_at(client, start), None);
        assert_eq!(blocks.blocked_for(client, start), None);
        assert_eq!(blocks.fail_at(client, start), Some(3));
        assert_eq!(blocks.blocked_for(client, start), Some(Duration::from_secs(60)));
        assert_eq!(blocks.blocked_for(ip("203.0.113.10"), start), None, "others are not");
        let later = start + Duration::from_secs(59);
        assert_eq!(blocks.blocked_for(client, later), Some(Duration::from_secs(1)));
        assert_eq!(blocks.blocked_for(client, start + Duration::from_secs(60)), None);
    }

    #[test]
    fn failures_older_than_a_minute_are_forgotten() {
        let blocks = blocks(2, 60);
        let start = Instant::now();
        let client = ip("198.51.100.1");
        assert_eq!(blocks.fail_at(client, start), None);
        assert_eq!(blocks.fail_at(client, start + WINDOW), None);
        assert_eq!(blocks.fail_at(client, start + WINDOW), Some(2));
    }

    #[test]
    fn an_ipv6_client_is_blocked_by_its_64() {
        let blocks = blocks(2, 60);
        let now = Instant::now();
        assert_eq!(blocks.fail_at(ip("2001:db8::1"), now), None);
        assert_eq!(blocks.fail_at(ip("2001:db8::2"), now), Some(2));
        assert!(blocks.blocked_for(ip("2001:db8::ffff:1"), now).is_some());
        assert!(blocks.blocked_for(ip("2001:db8:0:1::1"), now).is_none());
    }

    #[test]
    fn turned_off_it_never_blocks() {
        let blocks = AuthBlocks::new(None);
        let client = ip("203.0.113.9");
        (0..1_000).for_each(|_| blocks.failed(client));
        assert!(blocks.check(client).is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_blocked_addresses() {
        let blocks = blocks(2, 600);
        let now = Instant::now();
        let blocked = ip("192.0.2.1");
        blocks.fail_at(blocked, now);
        assert_eq!(blocks.fail_at(blocked, now), Some(2));
        // One failure each from more addresses than the table holds.
        for n in 0..(MAX_ENTRIES as u32 + 10_000) {
            blocks.fail_at(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)), now);
        }
        let table = blocks.table.lock().unwrap();
        assert!(table.entries.len() <= MAX_ENTRIES, "{}", table.entries.len());
        drop(table);
        assert!(blocks.blocked_for(blocked, now).is_some(), "the blocked address was evicted");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
        assert_eq!(whole_seconds(Duration::from_millis(59_001)), 60);
    }
}

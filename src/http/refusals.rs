//! Failed `/wms/*` authentications, per peer address: each is logged (at most one line per
//! address per minute, carrying how many were refused since the previous line), and repeated ones
//! are slowed down. The first failure from an address in a while is answered at once (a WMS with a
//! mistyped password sees it quickly); each further one is held back `delay`, doubling up to `max`,
//! until the address has had no failure for [`FORGET_AFTER`]. Successful calls are never delayed
//! and do not reset the count (they may come through the same proxy as the failing ones).
//!
//! Behind a reverse proxy every caller has the proxy's address, so failures from everyone share
//! one count there: still only the refusals are slowed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An address with no failure for this long starts again from no delay.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// At most one log line per address per this long.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Addresses tracked at once; beyond, the others share one entry (so a flood from many
/// addresses is slowed as one, and memory stays bounded).
const MAX_PEERS: usize = 4096;
/// The shared entry of addresses beyond [`MAX_PEERS`], and of requests without a known peer.
const OTHERS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The failure counts, shared by every `/wms/*` request.
pub struct Refusals {
    delay: Duration,
    max: Duration,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    /// Failures since the address was last forgotten.
    failures: u32,
    last_failure: Instant,
    last_logged: Option<Instant>,
    /// Failures not yet reported in a log line.
    unlogged: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// How long to hold the answer back.
    pub delay: Duration,
    /// `Some(n)`: log a line now, reporting `n` refusals since the previous one (this one included).
    pub log: Option<u64>,
    /// Failures from this address since it was last forgotten.
    pub failures: u32,
}

impl Refusals {
    pub fn new(delay: Duration, max: Duration) -> Self {
        Self { delay, max, peers: Mutex::new(HashMap::new()) }
    }

    /// Records a refused call from `peer` at `now`.
    pub fn refused(&self, peer: Option<IpAddr>, now: Instant) -> Verdict {
        let Ok(mut peers) = self.peers.lock() else {
            // A panic while holding the lock: no slowing down rather than no answer.
            return Verdict { delay: Duration::ZERO, log: Some(1), failures: 1 };
        };
        let mut key = peer.map_or(OTHERS, |ip| ip.to_canonical());
        if !peers.contains_key(&key) && peers.len() >= MAX_PEERS {
            peers.retain(|_, p| now.duration_since(p.last_failure) < FORGET_AFTER);
            if peers.len() >= MAX_PEERS {
                key = OTHERS;
            }
        }
        let fresh = Peer { failures: 0, last_failure: now, last_logged: None, unlogged: 0 };
        let p = peers.entry(key).or_insert(fresh);
        if now.duration_since(p.last_failure) >= FORGET_AFTER {
            *p = Peer { last_logged: p.last_logged, unlogged: p.unlogged, ..fresh };
        }
        p.failures = p.failures.saturating_add(1);
        p.last_failure = now;
        p.unlogged += 1;
        let log = p.last_logged.is_none_or(|at| now.duration_since(at) >= LOG_EVERY).then(|| {
            p.last_logged = Some(now);
            std::mem::take(&mut p.unlogged)
        });
        Verdict { delay: self.delay_for(p.failures), log, failures: p.failures }
    }

    /// No delay for the first failure, then `delay` doubling per failure, capped at `max`.
    fn delay_for(&self, failures: u32) -> Duration {
        match failures {
            0 | 1 => Duration::ZERO,
            n => self.delay.saturating_mul(1u32 << (n - 2).min(20)).min(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn repeated_failures_wait_longer_up_to_the_cap_and_addresses_are_counted_apart() {
        let r = Refusals::new(Duration::from_millis(100), Duration::from_millis(500));
        let now = Instant::now();
        let delays: Vec<u64> = (0..6).map(|_| r.refused(ip(1), now).delay.as_millis() as u64).collect();
        assert_eq!(delays, [0, 100, 200, 400, 500, 500]);
        assert_eq!(r.refused(ip(2), now).delay, Duration::ZERO, "another address starts afresh");
        let later = now + FORGET_AFTER;
        assert_eq!(r.refused(ip(1), later).delay, Duration::ZERO, "forgotten after a quiet spell");
    }

    #[test]
    fn one_log_line_per_address_per_minute_with_the_count_since_the_last() {
        let r = Refusals::new(Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        assert_eq!(r.refused(ip(1), now).log, Some(1));
        for s in 1..5 {
            assert_eq!(r.refused(ip(1), now + Duration::from_secs(s)).log, None);
        }
        assert_eq!(r.refused(ip(2), now).log, Some(1), "each address has its own line");
        assert_eq!(r.refused(ip(1), now + LOG_EVERY).log, Some(5), "four held back plus this one");
    }

    #[test]
    fn ipv4_mapped_addresses_are_one_peer_and_the_table_is_bounded() {
        let r = Refusals::new(Duration::from_millis(1), Duration::from_secs(1));
        let now = Instant::now();
        r.refused(ip(9), now);
        let mapped = Some(IpAddr::V6(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped()));
        assert_eq!(r.refused(mapped, now).failures, 2);
        for n in 0..(MAX_PEERS as u32 + 10) {
            r.refused(Some(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n) + 1))), now);
        }
        assert!(r.peers.lock().unwrap().len() <= MAX_PEERS + 1);
        assert!(r.refused(Some(IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX))), now).failures > 1, "shares OTHERS");
    }
}

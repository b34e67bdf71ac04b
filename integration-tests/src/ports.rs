//! Free loopback ports for test processes.
//!
//! A port is chosen here and bound later by another process (Envoy, the
//! agent, an upstream), so between the two nothing holds it. Ports from the
//! kernel's ephemeral range are unsafe for that: any outgoing connection in
//! the meantime (Envoy dialling discovery, a test client) may be given the
//! same port as its source and the later listen fails with "address in use".
//! So ports are taken from outside that range, where the kernel never hands
//! them out on its own.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Ports already handed out by this process, and where the next search
/// starts, so concurrent tests never collide with each other.
struct Registry {
    handed_out: BTreeSet<u16>,
    next: Option<u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    handed_out: BTreeSet::new(),
    next: None,
});

/// Where the kernel's ephemeral range is when it cannot be read (Linux's
/// default).
const DEFAULT_EPHEMERAL: (u32, u32) = (32768, 60999);

/// The lowest port handed out: clear of the well-known and most registered
/// service ports people run on developer machines.
const LOWEST: u32 = 10000;

/// Istio's own ports (15001, 15006, 15010, 15021, ...): a sidecar, a demo or
/// a local Istio may hold them, so tests never take them.
const ISTIO_PORTS: Range<u32> = 15000..15100;

/// A port nothing listens on now, outside the kernel's ephemeral range, that
/// this process has not handed out before: for a port another process will
/// bind.
pub fn free_port() -> anyhow::Result<u16> {
    take(|port| bindable(port).then_some(())).map(|(port, ())| port)
}

/// A listener on `ip`, bound now, at a port chosen as [`free_port`] chooses:
/// for a server of this process, which so never leaves its port unbound
/// between choosing and listening for another process to take.
pub fn listener_on(ip: &str) -> anyhow::Result<TcpListener> {
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("{ip:?} is not an IPv4 address"))?;
    let (_, listener) = take(|port| TcpListener::bind((ip, port)).ok())?;
    listener
        .set_nonblocking(true)
        .context("cannot make a listener non-blocking")?;
    Ok(listener)
}

/// The first port of the pool, from where this process left off, that
/// `try_port` accepts and that was not handed out before.
fn take<T>(mut try_port: impl FnMut(u16) -> Option<T>) -> anyhow::Result<(u16, T)> {
    let pool = pool(ephemeral_range());
    let size = pool.end - pool.start;
    if size == 0 {
        anyhow::bail!("the ephemeral port range leaves no loopback ports for tests");
    }
    let mut registry = REGISTRY
        .lock()
        .map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
    // Each test process starts somewhere else in the pool, so two test
    // binaries run at once (or a leftover process) rarely meet.
    let start = *registry.next.get_or_insert_with(|| seed() % size);
    for step in 0..size {
        let offset = (start + step) % size;
        if ISTIO_PORTS.contains(&(pool.start + offset)) {
            continue;
        }
        let Ok(port) = u16::try_from(pool.start + offset) else {
            continue;
        };
        if registry.handed_out.contains(&port) {
            continue;
        }
        let Some(taken) = try_port(port) else {
            continue;
        };
        registry.handed_out.insert(port);
        registry.next = Some((offset + 1) % size);
        return Ok((port, taken));
    }
    anyhow::bail!(
        "no free loopback port in {}..{} (outside the ephemeral range)",
        pool.start,
        pool.end
    )
}

/// Fails with a clear message if `port` is taken on loopback.
pub fn ensure_free(port: u16, what: &str) -> anyhow::Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| {
            format!(
                "port {port} ({what}) is already in use on 127.0.0.1 ({})",
                crate::port_holders::describe(port)
            )
        })
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The kernel's ephemeral port range, inclusive.
fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

fn parse_range(text: &str) -> Option<(u32, u32)> {
    let mut fields = text.split_whitespace().map(str::parse::<u32>);
    let low = fields.next()?.ok()?;
    let high = fields.next()?.ok()?;
    (low <= high && high <= 65535).then_some((low, high))
}

/// The larger stretch of ports outside the ephemeral range, at or above
/// [`LOWEST`].
fn pool((low, high): (u32, u32)) -> Range<u32> {
    let below = LOWEST..low.max(LOWEST);
    let above = (high + 1).max(LOWEST)..65536;
    if below.len() >= above.len() {
        below
    } else {
        above
    }
}

fn seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let port = u32::from(free_port().expect("a free port"));
            assert!(port < low || port > high, "{port} is in {low}..={high}");
            assert!(port >= LOWEST, "{port}");
            assert!(!ISTIO_PORTS.contains(&port), "{port}");
            assert!(seen.insert(port), "{port} handed out twice");
        }
    }

    #[test]
    fn a_listener_is_bound_at_a_pool_port_not_handed_out_again() {
        let l = listener_on("127.0.0.1").expect("a listener");
        let port = l.local_addr().expect("addr").port();
        let (low, high) = ephemeral_range();
        assert!(u32::from(port) < low || u32::from(port) > high, "{port}");
        assert!(!bindable(port), "held by the listener");
        for _ in 0..50 {
            assert_ne!(free_port().expect("a free port"), port);
        }
    }

    #[test]
    fn the_pool_is_the_larger_side_of_the_ephemeral_range() {
        assert_eq!(pool((32768, 60999)), 10000..32768);
        assert_eq!(pool((1024, 40000)), 40001..65536);
        assert_eq!(pool((5000, 9000)), 10000..65536);
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("junk"), None);
    }
}

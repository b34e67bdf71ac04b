//! Merges bursts of source events into one push.
//!
//! A push starts once no new event has arrived for `after` (the burst is
//! over), or once `max` has passed since the first event of the burst (a
//! source that never goes quiet still gets its changes out). Istio's
//! `PILOT_DEBOUNCE_AFTER` and `PILOT_DEBOUNCE_MAX` mean the same.
//!
//! A burst of endpoint events only also ends `eds_max` after its first
//! event. Under steady endpoint churn (pods coming and going every few tens
//! of milliseconds in a large cluster) the quiet period never comes, and
//! waiting for `max` would leave proxies sending traffic to endpoints that
//! are gone for seconds. Endpoint pushes are small and incremental, so
//! pushing them on a short fixed window costs little.
//!
//! Both windows count from when a source first saw a change, not from when
//! the change reached the debouncer. A source may hold a change back for its
//! own reasons (the config folder waits for a file to be written whole), and
//! that wait is spent inside the window rather than added to it.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_model::UpdateKind;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::sources::SourceEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebounceConfig {
    pub after: Duration,
    pub max: Duration,
    /// The longest a burst of endpoint events only waits.
    pub eds_max: Duration,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        DebounceConfig {
            after: Duration::from_millis(100),
            max: Duration::from_secs(10),
            eds_max: Duration::from_millis(100),
        }
    }
}

/// The events of one burst.
#[derive(Debug, Clone)]
pub struct Merged {
    /// When a source first saw a change of this burst.
    pub first: Instant,
    /// When the last event of the burst reached the debouncer.
    pub last: Instant,
    pub counts: BTreeMap<UpdateKind, usize>,
}

impl Merged {
    fn new(event: SourceEvent, now: Instant) -> Self {
        Merged {
            first: event.seen.min(now),
            last: now,
            counts: BTreeMap::from([(event.kind, 1)]),
        }
    }

    fn add(&mut self, event: SourceEvent, now: Instant) {
        self.first = self.first.min(event.seen);
        self.last = now;
        *self.counts.entry(event.kind).or_default() += 1;
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn endpoints_only(&self) -> bool {
        self.counts.keys().all(|k| *k == UpdateKind::Eds)
    }

    /// When this burst is pushed unless another event extends it.
    fn deadline(&self, cfg: &DebounceConfig) -> Instant {
        let mut at = (self.last + cfg.after).min(self.first + cfg.max);
        if self.endpoints_only() {
            at = at.min(self.first + cfg.eds_max);
        }
        at
    }
}

/// Runs until every sender of `events` is gone, calling `fire` once per
/// burst. `fire` runs on this task, so events arriving meanwhile simply wait
/// in the channel and join the next burst; their windows count from when
/// they were seen, so the wait is not added to them.
pub async fn run(
    mut events: mpsc::Receiver<SourceEvent>,
    cfg: DebounceConfig,
    mut fire: impl FnMut(Merged),
) {
    while let Some(event) = events.recv().await {
        let mut merged = Merged::new(event, Instant::now());
        let mut closed = false;
        while !cfg.after.is_zero() {
            let deadline = merged.deadline(&cfg);
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline) => break,
                event = events.recv() => match event {
                    Some(event) => merged.add(event, Instant::now()),
                    None => {
                        closed = true;
                        break;
                    }
                },
            }
        }
        fire(merged);
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Fired = Arc<Mutex<Vec<(Duration, usize)>>>;

    /// Starts a debouncer whose bursts are recorded as (time since start, events).
    fn start(cfg: DebounceConfig) -> (mpsc::Sender<SourceEvent>, Fired) {
        let (tx, rx) = mpsc::channel(64);
        let fired: Fired = Arc::default();
        let log = fired.clone();
        let t0 = Instant::now();
        tokio::spawn(run(rx, cfg, move |m| {
            if let Ok(mut log) = log.lock() {
                log.push((m.last.duration_since(t0), m.total()));
            }
        }));
        (tx, fired)
    }

    /// Sends a change its source saw just now.
    async fn send(tx: &mpsc::Sender<SourceEvent>, kind: UpdateKind) {
        let seen = Instant::now();
        tx.send(SourceEvent { kind, seen }).await.expect("send");
    }

    fn fired(f: &Fired) -> Vec<usize> {
        f.lock()
            .map(|v| v.iter().map(|(_, n)| *n).collect())
            .unwrap_or_default()
    }

    const CFG: DebounceConfig = DebounceConfig {
        after: Duration::from_millis(100),
        max: Duration::from_secs(1),
        eds_max: Duration::from_millis(100),
    };

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_one_push() {
        let (tx, f) = start(CFG);
        for _ in 0..5 {
            send(&tx, UpdateKind::Svc).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The last event came 20 ms ago; 59 ms more is still inside the
        // 100 ms quiet period.
        tokio::time::sleep(Duration::from_millis(59)).await;
        assert!(fired(&f).is_empty(), "fired before the quiet period ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fired(&f), vec![5]);

        // A later event starts a new burst.
        send(&tx, UpdateKind::Config).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(fired(&f), vec![5, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_never_goes_quiet_is_pushed_at_max() {
        let (tx, f) = start(CFG);
        // One event every 50 ms for 2.5 s: never 100 ms of quiet.
        for _ in 0..50 {
            send(&tx, UpdateKind::Config).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bursts = fired(&f);
        assert!(
            bursts.len() >= 2,
            "expected pushes forced by max, got {bursts:?}"
        );
        assert!(
            bursts.iter().all(|n| *n <= 21),
            "a burst outlived max: {bursts:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn endpoint_churn_is_pushed_within_eds_max_of_its_first_event() {
        let (tx, f) = start(CFG);
        // One endpoint event every 40 ms: never 100 ms of quiet, and yet
        // each push is at most 100 ms after the first event it carries.
        for _ in 0..25 {
            send(&tx, UpdateKind::Eds).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        // Let the last burst end.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let bursts = fired(&f);
        assert!(bursts.len() >= 8, "endpoint bursts held back: {bursts:?}");
        assert!(bursts.iter().all(|n| *n <= 3), "{bursts:?}");
        assert_eq!(bursts.iter().sum::<usize>(), 25);

        // A config event in the burst brings back the quiet-period rule.
        let (tx, f) = start(CFG);
        send(&tx, UpdateKind::Config).await;
        for _ in 0..5 {
            send(&tx, UpdateKind::Eds).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(fired(&f), vec![6]);
    }

    #[tokio::test(start_paused = true)]
    async fn windows_count_from_when_the_source_saw_the_change() {
        let (tx, f) = start(CFG);
        // The source held the change for 30 ms before passing it on (as the
        // config folder does while a file is being written): 70 ms of the
        // endpoint window are left.
        let seen = Instant::now();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let event = SourceEvent {
            kind: UpdateKind::Eds,
            seen,
        };
        tx.send(event).await.expect("send");
        tokio::time::sleep(Duration::from_millis(69)).await;
        assert!(fired(&f).is_empty(), "fired before the window ended");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(fired(&f), vec![1], "the window was extended by the wait");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_after_pushes_every_event() {
        let (tx, f) = start(DebounceConfig {
            after: Duration::ZERO,
            ..CFG
        });
        for _ in 0..3 {
            send(&tx, UpdateKind::Svc).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(fired(&f), vec![1, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_channel_flushes_the_last_burst() {
        let (tx, f) = start(CFG);
        send(&tx, UpdateKind::Config).await;
        drop(tx);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(fired(&f), vec![1]);
    }
}

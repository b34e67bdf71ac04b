//! Shared by the `make bench` binaries: summary statistics, the machine
//! description, and rewriting one marked section of BENCHMARKS.md.

use std::time::Duration;

/// Bytes in a mebibyte, the unit the reports give memory in.
pub const MB: f64 = 1024.0 * 1024.0;

/// (min, median, max) of `v`; zeros when empty.
pub fn spread(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    if v.is_empty() {
        return Default::default();
    }
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The `p`th percentile (0–100) of `v`, nearest rank; zero when empty.
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median of `v`; zero when empty.
pub fn median_f64(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

pub fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Replaces the section of `text` between `begin` and `end` with `section`
/// (which carries the markers), or appends it.
pub fn splice(text: &str, begin: &str, end: &str, section: &str) -> String {
    match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if e > b => {
            let after = &text[e + end.len()..];
            format!("{}{}{}", &text[..b], section.trim_end(), after)
        }
        _ => {
            let head = if text.is_empty() {
                "# Benchmarks\n\nFigures from `make bench`; each section says how it was measured.\n\n".to_string()
            } else {
                format!("{}\n\n", text.trim_end())
            };
            format!("{head}{section}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut v, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
    }

    #[test]
    fn splice_replaces_only_its_section() {
        let text = "# B\n\n<!-- a -->\nold\n<!-- /a -->\n\nother\n";
        let out = splice(
            text,
            "<!-- a -->",
            "<!-- /a -->",
            "<!-- a -->\nnew\n<!-- /a -->\n",
        );
        assert_eq!(out, "# B\n\n<!-- a -->\nnew\n<!-- /a -->\n\nother\n");
        let appended = splice(
            "# B\n",
            "<!-- x -->",
            "<!-- /x -->",
            "<!-- x -->\n1\n<!-- /x -->\n",
        );
        assert!(appended.ends_with("<!-- x -->\n1\n<!-- /x -->\n"));
    }
}

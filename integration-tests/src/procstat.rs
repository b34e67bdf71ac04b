//! CPU time and memory of a process, read from /proc, for benchmarks.

use anyhow::Context;

/// The unit of CPU times in /proc: USER_HZ, which Linux fixes at 100 for
/// user space on every mainstream architecture.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size now, in bytes.
    pub rss: u64,
    /// Peak resident set size, in bytes.
    pub peak_rss: u64,
}

/// The usage of process `pid` now.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields are counted after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/pid/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/pid/stat")?
            .parse::<f64>()?)
    };
    let cpu_seconds = (ticks(11)? + ticks(12)?) / USER_HZ;
    let status = status(pid)?;
    let kb = |key: &str| -> u64 {
        status_field(&status, key)
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Usage {
        cpu_seconds,
        rss: kb("VmRSS:"),
        peak_rss: kb("VmHWM:"),
    })
}

/// The text of `/proc/<pid>/status`.
pub fn status(pid: u32) -> anyhow::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))
}

/// The value of the line of `status` that starts with `key` (such as
/// `"VmRSS:"`), trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let u = usage(std::process::id()).expect("usage");
        assert!(u.rss > 0 && u.peak_rss >= u.rss);
        let start = u.cpu_seconds;
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(usage(std::process::id()).expect("usage").cpu_seconds > start);
    }
}

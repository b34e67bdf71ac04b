//! Who holds a port, from `/proc`: every TCP socket whose local port it is
//! (`/proc/net/tcp` and `tcp6`), its state, and the process whose file
//! descriptors hold it. For the message of a bind that failed: "address in
//! use" alone does not say what to fix.

use std::collections::BTreeMap;

/// One socket on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `127.0.0.1:28378`, `[::]:28378`.
    pub local: String,
    /// The TCP state as `ss` names it: `LISTEN`, `ESTAB`, `TIME-WAIT`, ...
    pub state: &'static str,
    /// The processes holding the socket (none for a socket the kernel keeps
    /// alone, such as one in TIME-WAIT), as `pid (command line)`.
    pub processes: Vec<String>,
}

/// The sockets on `port`, in this network namespace.
pub fn holders(port: u16) -> Vec<Holder> {
    let mut found: Vec<(Holder, u64)> = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        found.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| parse_line(line, v6))
                .filter(|(p, _, _, _)| *p == port)
                .map(|(_, local, state, inode)| {
                    (
                        Holder {
                            local,
                            state,
                            processes: Vec::new(),
                        },
                        inode,
                    )
                }),
        );
    }
    if found.iter().any(|(_, inode)| *inode != 0) {
        let owners = socket_owners();
        for (h, inode) in &mut found {
            if let Some(p) = owners.get(inode) {
                h.processes = p.clone();
            }
        }
    }
    found.into_iter().map(|(h, _)| h).collect()
}

/// [`holders`] as one line for an error message.
pub fn describe(port: u16) -> String {
    let hs = holders(port);
    if hs.is_empty() {
        return format!("no socket holds port {port} now");
    }
    let parts: Vec<String> = hs
        .iter()
        .map(|h| {
            let who = if h.processes.is_empty() {
                "no process".to_string()
            } else {
                h.processes.join(", ")
            };
            format!("{} {} held by {who}", h.local, h.state)
        })
        .collect();
    format!("port {port}: {}", parts.join("; "))
}

/// One line of `/proc/net/tcp{,6}`: (local port, local address, state,
/// inode).
fn parse_line(line: &str, v6: bool) -> Option<(u16, String, &'static str, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (addr, port) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let state = state_name(u8::from_str_radix(fields.get(3)?, 16).ok()?);
    let inode = fields.get(9)?.parse::<u64>().ok()?;
    let local = if v6 {
        format!("[{}]:{port}", ipv6(addr)?)
    } else {
        format!("{}:{port}", ipv4(addr)?)
    };
    Some((port, local, state, inode))
}

/// The kernel writes addresses as 32-bit words in host order (little-endian
/// on every machine this runs on).
fn ipv4(hex: &str) -> Option<std::net::Ipv4Addr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(std::net::Ipv4Addr::from(word.swap_bytes()))
}

fn ipv6(hex: &str) -> Option<std::net::Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for w in 0..4 {
        let word = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?;
        bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    Some(std::net::Ipv6Addr::from(bytes))
}

fn state_name(code: u8) -> &'static str {
    match code {
        0x01 => "ESTAB",
        0x02 => "SYN-SENT",
        0x03 => "SYN-RECV",
        0x04 => "FIN-WAIT-1",
        0x05 => "FIN-WAIT-2",
        0x06 => "TIME-WAIT",
        0x07 => "CLOSED",
        0x08 => "CLOSE-WAIT",
        0x09 => "LAST-ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Socket inode → the processes whose file descriptors point at it.
fn socket_owners() -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.filter_map(Result::ok) {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let mut inodes: Vec<u64> = fds
            .filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|target| {
                let t = target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?;
                t.parse::<u64>().ok()
            })
            .collect();
        inodes.sort_unstable();
        inodes.dedup();
        if inodes.is_empty() {
            continue;
        }
        let who = format!("pid {pid} ({})", command_line(pid));
        for inode in inodes {
            out.entry(inode).or_default().push(who.clone());
        }
    }
    out
}

fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let line = text.join(" ");
    // Enough to tell an Envoy from an agent, and which test started it.
    if line.chars().count() > 200 {
        format!("{}...", line.chars().take(200).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_of_this_process_is_found_with_its_pid() {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        let hs = holders(port);
        assert_eq!(hs.len(), 1, "{hs:?}");
        assert_eq!(hs[0].local, format!("127.0.0.1:{port}"));
        assert_eq!(hs[0].state, "LISTEN");
        let me = format!("pid {} (", std::process::id());
        assert!(hs[0].processes.iter().any(|p| p.starts_with(&me)), "{hs:?}");
        assert!(
            describe(port).contains("LISTEN held by pid"),
            "{}",
            describe(port)
        );
        drop(l);
        assert_eq!(describe(port), format!("no socket holds port {port} now"));
    }

    #[test]
    fn lines_of_both_files_parse() {
        let v4 = "   0: 0100007F:6EBA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0";
        assert_eq!(
            parse_line(v4, false),
            Some((28346, "127.0.0.1:28346".to_string(), "LISTEN", 4242))
        );
        let v6 = "   1: 00000000000000000000000001000000:6EBA 00000000000000000000000000000000:0000 06 00000000:00000000 03:00000E2A 00000000     0        0 0 3 0";
        assert_eq!(
            parse_line(v6, true),
            Some((28346, "[::1]:28346".to_string(), "TIME-WAIT", 0))
        );
        assert_eq!(parse_line("garbage", false), None);
    }
}

//! How the server hands memory back to the system after a burst.
//!
//! A connect storm keeps hundreds of megabytes of responses in flight for a
//! few seconds and then frees them. With transparent huge pages, a 2 MiB
//! page stays resident while any part of it is in use, and faulting one in
//! zeroes all of it; the allocator madvises its arenas for them. Freed 4 KiB
//! pages, by contrast, go back to the system as the storm ends
//! (BENCHMARKS.md, "Memory returned after a storm").

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("cannot turn transparent huge pages off for this process")]
    HugePages(#[source] nix::Error),
}

/// Turns transparent huge pages off for the whole process, whatever the
/// host's setting. Call it before serving (`main` does, once logging is up
/// so a refusal can be reported); a failure leaves the host's setting in
/// place, which costs memory, not correctness.
pub fn no_huge_pages() -> Result<(), MemoryError> {
    nix::sys::prctl::set_thp_disable(true).map_err(MemoryError::HugePages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_huge_pages_off_for_the_process() {
        no_huge_pages().expect("prctl is allowed in tests");
        assert!(nix::sys::prctl::get_thp_disable().expect("prctl"));
    }
}

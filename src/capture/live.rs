//! `gauntlet capture` (cargo feature `live-capture`): live capture on an interface into a
//! pcap file through libpcap, bounded by a packet count and a duration, written under a
//! `.partial` name and renamed when complete — what the replay then reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to capture.
#[derive(Debug, Clone)]
pub struct Live {
    /// Interface (`lo`, `eth0`, `any`).
    pub interface: String,
    /// A BPF filter (`tcp port 8080`).
    pub filter: Option<String>,
    /// Most packets.
    pub count: u64,
    /// Longest capture.
    pub duration: Duration,
    /// The pcap file.
    pub out: PathBuf,
}

/// What was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// Packets written.
    pub packets: u64,
    /// Packets the kernel dropped (the capture could not keep up).
    pub dropped: u64,
}

/// Captures until the count, the duration or `stop`.
pub fn capture(l: &Live, stop: &AtomicBool) -> Result<Captured, String> {
    let mut cap = pcap::Capture::from_device(l.interface.as_str())
        .and_then(|c| c.promisc(false).snaplen(65535).timeout(100).immediate_mode(true).open())
        // Non-blocking: an idle interface must not hold the capture past its duration or a stop.
        .and_then(pcap::Capture::setnonblock)
        .map_err(|e| format!("cannot capture on `{}`: {e} (capturing needs root or CAP_NET_RAW)", l.interface))?;
    if let Some(f) = &l.filter {
        cap.filter(f, true).map_err(|e| format!("filter `{f}`: {e}"))?;
    }
    let partial = partial(&l.out);
    let mut save = cap.savefile(&partial).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    let start = Instant::now();
    let mut packets = 0u64;
    while packets < l.count && start.elapsed() < l.duration && !stop.load(Ordering::Acquire) {
        match cap.next_packet() {
            Ok(p) => {
                save.write(&p);
                packets += 1;
            }
            Err(pcap::Error::TimeoutExpired) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                // No half-written capture is left behind.
                drop(save);
                let _ = std::fs::remove_file(&partial);
                return Err(format!("capture on `{}` failed: {e}", l.interface));
            }
        }
    }
    save.flush().map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    drop(save);
    let dropped = cap.stats().map_or(0, |s| u64::from(s.dropped));
    std::fs::rename(&partial, &l.out).map_err(|e| format!("cannot write {}: {e}", l.out.display()))?;
    Ok(Captured { packets, dropped })
}

fn partial(p: &Path) -> PathBuf {
    let mut name = p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    p.with_file_name(name)
}

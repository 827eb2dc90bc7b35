//! The optional kernel backend: real packets, really lost.
//!
//! The client link's far end is put in a network namespace gauntlet creates: a veth pair
//! (`10.213.x.1` on the host, `10.213.x.2` inside), the link's listening socket bound inside
//! the namespace (a thread enters it with `setns(2)`, binds, and leaves), its connections to
//! the target made from the host as usual. Every client packet so crosses the veth pair,
//! where the kernel applies what a user-space proxy cannot: `tbf` for bandwidth (on each
//! side's egress) and an nftables `numgen random` drop for **real packet loss** (on each
//! side's input, so both directions lose packets and TCP must retransmit). Latency, jitter,
//! slicing and resets stay with the user-space link running at the same place.
//!
//! Needs root and the `ip`, `tc` and `nft` commands; [`available`] says why not otherwise.
//! Everything is removed when the link stops — and a namespace left behind by a killed run
//! (its pid gone) is removed by the next run that starts one.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Impairment, Switch};

/// Names of everything one kernel link creates.
#[derive(Debug, Clone)]
struct Names {
    ns: String,
    host_if: String,
    ns_if: String,
    table: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Names {
    fn new() -> Self {
        let pid = std::process::id();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        // A /30 per link, chosen from the pid and a counter.
        let block = (pid.wrapping_mul(4).wrapping_add(n)) % 16_384;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + block * 4;
        Names {
            ns: format!("gauntlet-{pid}-{n}"),
            host_if: format!("gx{:x}h{n}", pid & 0xfffff),
            ns_if: format!("gx{:x}n{n}", pid & 0xfffff),
            table: format!("gauntlet_{pid}_{n}"),
            host_ip: Ipv4Addr::from(base + 1),
            ns_ip: Ipv4Addr::from(base + 2),
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("cannot run `{}`: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn found(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).chain(["/usr/sbin".into(), "/sbin".into()]).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Whether the kernel backend can run here; `Err` says why not and what works instead.
pub fn available() -> Result<(), String> {
    const INSTEAD: &str = "the user-space links (the default backend) still do latency, jitter, bandwidth, \
                           slicing, resets and blackholes — everything but real packet loss";
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Err(format!("the kernel backend needs root (this is uid {uid}); {INSTEAD}"));
    }
    let missing: Vec<&str> = ["ip", "tc", "nft"].into_iter().filter(|c| !found(c)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the kernel backend needs the {} command(s) (Debian: apt-get install iproute2 nftables); {INSTEAD}",
            missing.join(", ")
        ));
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(format!("this kernel has no network namespaces; {INSTEAD}"));
    }
    // Root is not enough in a container without CAP_NET_ADMIN: try it once, for real.
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(probe).clone().map_err(|why| format!("{why}; {INSTEAD}"))
}

/// Creates and removes a namespace holding a veth pair and an nftables table.
fn probe() -> Result<(), String> {
    let ns = format!("gauntlet-{}-probe", std::process::id());
    let result = run(&["ip", "netns", "add", &ns])
        .and_then(|_| run(&["ip", "-n", &ns, "link", "add", "gprobe0", "type", "veth", "peer", "name", "gprobe1"]))
        .and_then(|_| nft(Some(&ns), "add table inet gauntlet_probe\n"))
        .map(drop)
        .map_err(|e| format!("cannot build a test network here ({e})"));
    let _ = run(&["ip", "netns", "del", &ns]);
    result
}

/// Removes namespaces and tables left by gauntlet runs whose process is gone.
fn sweep() {
    let Ok(list) = run(&["ip", "netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix("gauntlet-").and_then(|r| r.split('-').next()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
    if let Ok(tables) = run(&["nft", "list", "tables"]) {
        for t in tables.lines() {
            let Some(name) = t.strip_prefix("table inet ") else { continue };
            let Some(pid) = name.strip_prefix("gauntlet_").and_then(|r| r.split('_').next()) else { continue };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run(&["nft", "delete", "table", "inet", name]);
            }
        }
    }
}

/// Binds a listener inside namespace `ns` at `ip` (any port), from a thread that enters it.
fn bind_inside(ns: &str, ip: Ipv4Addr) -> Result<std::net::TcpListener, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // Only this thread changes namespace, and it ends right after binding.
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
            let l = std::net::TcpListener::bind((ip, 0)).map_err(|e| format!("bind {ip} in {ns}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        })
        .join()
        .map_err(|_| "the namespace thread panicked".to_string())?
    })
}

/// Loss counters of one direction, read from nftables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossCounters {
    /// Packets that entered.
    pub packets: u64,
    /// Of those, dropped.
    pub dropped: u64,
}

/// A running kernel link.
pub struct KernelLink {
    /// Where clients connect (inside the namespace).
    pub addr: SocketAddr,
    names: Names,
    relay: Option<crate::serve::Server>,
    watcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for KernelLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLink").field("addr", &self.addr).field("ns", &self.names.ns).finish()
    }
}

fn create(n: &Names) -> Result<(), String> {
    let host_cidr = format!("{}/30", n.host_ip);
    let ns_cidr = format!("{}/30", n.ns_ip);
    run(&["ip", "netns", "add", &n.ns])?;
    run(&["ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &n.ns_if])?;
    run(&["ip", "link", "set", &n.ns_if, "netns", &n.ns])?;
    run(&["ip", "addr", "add", &host_cidr, "dev", &n.host_if])?;
    run(&["ip", "link", "set", &n.host_if, "up"])?;
    run(&["ip", "-n", &n.ns, "addr", "add", &ns_cidr, "dev", &n.ns_if])?;
    run(&["ip", "-n", &n.ns, "link", "set", &n.ns_if, "up"])?;
    run(&["ip", "-n", &n.ns, "link", "set", "lo", "up"])?;
    // One packet per wire-sized segment (no segmentation offload), so loss is per packet
    // as on a real link, not per 64 kB super-packet. Older kernels may refuse: not fatal.
    let _ = run(&["ip", "link", "set", "dev", &n.host_if, "gso_max_segs", "1"]);
    let _ = run(&["ip", "-n", &n.ns, "link", "set", "dev", &n.ns_if, "gso_max_segs", "1"]);
    // Loss tables: one on each side's input path, each counting what enters and what it drops.
    for (netns, iface) in [(None, &n.host_if), (Some(&n.ns), &n.ns_if)] {
        let script = format!(
            "table inet {t} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    \
             iifname \"{iface}\" counter\n  }}\n}}\n",
            t = n.table
        );
        nft(netns.map(String::as_str), &script)?;
    }
    Ok(())
}

/// Runs an nft script (one command per line), in namespace `netns` or on the host.
fn nft(netns: Option<&str>, script: &str) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("nft failed on:\n{script}\n{}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn destroy(n: &Names) {
    // Deleting the namespace deletes its veth end, and with it the pair.
    let _ = run(&["ip", "netns", "del", &n.ns]);
    let _ = run(&["ip", "link", "del", &n.host_if]);
    let _ = run(&["nft", "delete", "table", "inet", &n.table]);
}

/// Puts `imp`'s loss and bandwidth in force on both sides.
fn apply(n: &Names, imp: &Impairment) -> Result<(), String> {
    for (netns, iface) in [(None, n.host_if.as_str()), (Some(n.ns.as_str()), n.ns_if.as_str())] {
        let mut script =
            format!("flush chain inet {t} input\nadd rule inet {t} input iifname \"{iface}\" counter\n", t = n.table);
        if let Some(p) = imp.loss.filter(|p| *p > 0.0) {
            let threshold = (p * 1_000_000.0).round() as u64;
            script.push_str(&format!(
                "add rule inet {t} input iifname \"{iface}\" numgen random mod 1000000 < {threshold} counter drop\n",
                t = n.table
            ));
        }
        nft(netns, &script)?;
        let mut tc: Vec<String> = match netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.into(), "tc".into()],
            None => vec!["tc".into()],
        };
        match imp.bandwidth {
            Some(bytes) => {
                let burst = (bytes / 50).max(16 * 1024);
                tc.extend(
                    ["qdisc", "replace", "dev", iface, "root", "tbf", "rate"]
                        .iter()
                        .map(|s| s.to_string())
                        .chain([format!("{}bit", bytes * 8), "burst".into(), burst.to_string()])
                        .chain(["latency".into(), "400ms".into()]),
                );
                run(&tc.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
            None => {
                tc.extend(["qdisc", "del", "dev", iface, "root"].iter().map(|s| s.to_string()));
                // Nothing to delete when no qdisc was set: not an error.
                let _ = run(&tc.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
    Ok(())
}

impl KernelLink {
    /// Creates the namespace and veth pair and starts the link in it, forwarding to
    /// `upstream` under the impairment in `switch` (loss and bandwidth by the kernel, the
    /// rest by the user-space link). Blocks on `ip`/`tc`/`nft` for a few milliseconds.
    pub async fn spawn(upstream: SocketAddr, switch: Arc<Switch>) -> Result<Self, String> {
        available()?;
        let names = Names::new();
        let n = names.clone();
        let first = switch.get();
        let imp = first.clone();
        let listener = tokio::task::spawn_blocking(move || {
            sweep();
            let made = create(&n).and_then(|_| apply(&n, &imp)).and_then(|_| bind_inside(&n.ns, n.ns_ip));
            if made.is_err() {
                destroy(&n);
            }
            made
        })
        .await
        .map_err(|e| e.to_string())??;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        // The user-space part sees the impairment without what the kernel does.
        let user_part = |imp: &Impairment| Impairment { loss: None, bandwidth: None, ..imp.clone() };
        let relay_switch = Arc::new(Switch::new(user_part(&first)));
        let relay = super::spawn(listener, upstream, relay_switch.clone()).map_err(|e| e.to_string())?;
        let addr = relay.addr;
        let n = names.clone();
        let watcher = tokio::spawn(async move {
            let mut last = first;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = switch.get();
                if !Arc::ptr_eq(&last, &now) {
                    relay_switch.set(user_part(&now));
                    let (n, imp) = (n.clone(), now.clone());
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || apply(&n, &imp)).await {
                        tracing::warn!("kernel link: {e}");
                    }
                    last = now;
                }
            }
        });
        Ok(KernelLink { addr, names, relay: Some(relay), watcher })
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.names.ns
    }

    /// Packets that entered each side and how many the loss rule dropped:
    /// `(towards the target, towards the client)`.
    pub fn loss_counters(&self) -> (LossCounters, LossCounters) {
        let read = |netns: Option<&str>| -> LossCounters {
            let script = format!("list table inet {}\n", self.names.table);
            let out = nft(netns, &script).unwrap_or_default();
            let mut counts = out.lines().filter(|l| l.contains("counter packets")).map(|l| {
                let packets = l.split("packets ").nth(1).and_then(|r| r.split_whitespace().next());
                packets.and_then(|p| p.parse::<u64>().ok()).unwrap_or(0)
            });
            LossCounters { packets: counts.next().unwrap_or(0), dropped: counts.next().unwrap_or(0) }
        };
        (read(Some(&self.names.ns)), read(None))
    }

    /// Stops the link and removes the namespace, the veth pair and the tables.
    pub async fn stop(mut self) {
        self.watcher.abort();
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
        let n = self.names.clone();
        let _ = tokio::task::spawn_blocking(move || destroy(&n)).await;
        self.names.ns.clear();
    }
}

impl Drop for KernelLink {
    /// A link dropped without `stop` (an early return, a panic) still removes what it made.
    fn drop(&mut self) {
        self.watcher.abort();
        if !self.names.ns.is_empty() {
            destroy(&self.names);
        }
    }
}

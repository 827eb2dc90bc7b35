//! WebSocket sessions (tokio-tungstenite) over an HTTP/1.1 connection the h1 protocol has
//! already upgraded: messages on a schedule, each echo timed into the session histogram.
//!
//! A check with `request.websocket` sends the upgrade as its request (the identity's
//! credentials and the tag travel on it, so the gateway's policy and the oracle see it like
//! any request); `101` is the "allowed" answer. The session then sends one message every
//! `interval` until `hold` has passed and closes. Per-message round trips go to
//! [`Stats::rtt`]; sessions the peer ended early are counted in [`Stats::closed_by_peer`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use crate::scenario::WebSocket;

/// How long a message's echo is awaited (a session without its echo ends there).
const ECHO_WAIT: Duration = Duration::from_secs(2);

/// Session counters of a run, shared by every generator thread.
#[derive(Debug)]
pub struct Stats {
    /// Sessions opened (101).
    pub opened: AtomicU64,
    /// Sessions held to the end and closed by gauntlet.
    pub completed: AtomicU64,
    /// Sessions the gateway (or upstream) ended before `hold`.
    pub closed_by_peer: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Echoes received.
    pub echoed: AtomicU64,
    /// Round trip per message, µs.
    pub rtt: Mutex<Histogram<u64>>,
    /// Sessions open right now.
    pub open_now: AtomicU64,
    /// Most sessions open at once.
    pub open_max: AtomicU64,
    /// Sessions closed early (with a close frame) because the run was stopped.
    pub stopped: AtomicU64,
    /// Sessions ended because an echo did not come back in time (not completed).
    pub echo_lost: AtomicU64,
    /// Cancelled when the run stops: open sessions close cleanly at once.
    pub stop: CancellationToken,
    /// Resident memory (bytes) when the first session opened, and at the most sessions.
    pub rss: Mutex<(u64, u64)>,
}

/// Resident memory of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            opened: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            closed_by_peer: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            echoed: AtomicU64::new(0),
            rtt: Mutex::new(crate::metrics::histogram()),
            open_now: AtomicU64::new(0),
            open_max: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            echo_lost: AtomicU64::new(0),
            stop: CancellationToken::new(),
            rss: Mutex::new((0, 0)),
        }
    }
}

/// The fixed upgrade headers of a client handshake (RFC 6455 §4.1); the
/// `Sec-WebSocket-Key` is random per upgrade ([`new_key`]) and is written by `proto::h1`.
pub fn upgrade_headers(h: &mut http::HeaderMap) {
    use http::HeaderValue;
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(http::header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(http::header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    h.remove(http::header::SEC_WEBSOCKET_KEY);
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 §4.1).
pub fn new_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Accept` a server must answer to `key` (RFC 6455 §4.2.2).
pub fn accept_for(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Held to the end; gauntlet closed it.
    Held,
    /// The gateway (or the upstream) ended it first.
    ClosedByPeer,
    /// The run was stopped.
    Stopped,
    /// An echo did not come back in time: the session did not carry its messages.
    EchoLost,
}

/// Small buffers: thousands of mostly idle sessions must not cost 256 KiB each
/// (tungstenite's default read and write buffers are 128 KiB apiece).
pub fn config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Runs one session on an upgraded stream.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(io: S, spec: &WebSocket, stats: &Stats) -> End {
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Client, Some(config())).await;
    stats.opened.fetch_add(1, Ordering::Relaxed);
    let now_open = stats.open_now.fetch_add(1, Ordering::Relaxed) + 1;
    if stats.open_max.fetch_max(now_open, Ordering::Relaxed) < now_open {
        // A new high: note the memory it takes (the first session gives the baseline).
        let rss = rss_bytes();
        let mut r = stats.rss.lock().unwrap_or_else(|p| p.into_inner());
        if r.0 == 0 {
            r.0 = rss;
        }
        r.1 = r.1.max(rss);
    }
    let start = Instant::now();
    let mut i = 0usize;
    let mut closed_by_peer = false;
    let mut stopped = false;
    let mut lost = false;
    'session: while start.elapsed() < spec.hold {
        let msg = &spec.messages[i % spec.messages.len()];
        i += 1;
        let t = Instant::now();
        if ws.send(Message::text(msg.as_str())).await.is_err() {
            closed_by_peer = true;
            break;
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
        // The echo (control frames are answered by tungstenite and skipped here), awaited
        // until one deadline — pings do not extend it. A `must_close` session also stops
        // waiting at the end of its hold: still open then, it was held (a leak).
        let echo_by = t + ECHO_WAIT.max(spec.interval);
        let hold_end = start + spec.hold;
        let until = if spec.must_close { echo_by.min(hold_end) } else { echo_by };
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout_at(until.into(), ws.next()) => n,
                _ = stats.stop.cancelled() => {
                    stopped = true;
                    break 'session;
                }
            };
            match next {
                Ok(Some(Ok(Message::Text(_) | Message::Binary(_)))) => {
                    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = stats.rtt.lock().unwrap_or_else(|p| p.into_inner()).record(us.min(crate::metrics::MAX_US));
                    stats.echoed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    closed_by_peer = true;
                    break 'session;
                }
                Ok(Some(Ok(_))) => continue,
                Err(_) if spec.must_close && hold_end < echo_by => break 'session,
                Err(_) => {
                    lost = true;
                    break 'session;
                }
            }
        }
        let next = t + spec.interval;
        if next > start + spec.hold {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stats.stop.cancelled() => {
                stopped = true;
                break;
            }
        }
    }
    let end = if stopped {
        let _ = ws.close(None).await;
        stats.stopped.fetch_add(1, Ordering::Relaxed);
        End::Stopped
    } else if closed_by_peer {
        stats.closed_by_peer.fetch_add(1, Ordering::Relaxed);
        End::ClosedByPeer
    } else if lost {
        let _ = ws.close(None).await;
        stats.echo_lost.fetch_add(1, Ordering::Relaxed);
        End::EchoLost
    } else {
        let _ = ws.close(None).await;
        stats.completed.fetch_add(1, Ordering::Relaxed);
        End::Held
    };
    stats.open_now.fetch_sub(1, Ordering::Relaxed);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that keeps the session alive with pings and never echoes: the session is still
    /// open at the end of its hold — held (a leak for `must_close`), not waited on forever
    /// (each ping used to re-arm the echo wait, and the request timed out instead).
    #[tokio::test]
    async fn a_session_kept_alive_by_pings_alone_is_held_to_its_end() {
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut ws = WebSocketStream::from_raw_socket(server, Role::Server, Some(config())).await;
            loop {
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    m = ws.next() => if m.is_none() { return },
                }
            }
        });
        let spec = crate::scenario::WebSocket {
            messages: vec!["hello".into()],
            interval: Duration::from_millis(50),
            hold: Duration::from_millis(300),
            must_close: true,
        };
        let stats = Stats::default();
        let end = tokio::time::timeout(Duration::from_secs(20), session(client, &spec, &stats)).await;
        assert_eq!(end, Ok(End::Held));
    }
}

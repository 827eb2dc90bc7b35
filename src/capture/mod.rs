//! Captured traffic → HTTP exchanges, streamed: pcap/pcapng frames ([`file`]) → TCP
//! segments ([`decode`]) → reassembled byte streams ([`tcp`]) → requests paired with their
//! recorded responses ([`http1`]). Memory holds open connections and what waits in them,
//! never the capture: a gigabyte file streams through a 64 KiB read buffer.
//!
//! Every frame, segment and byte that does not become part of an exchange is counted in
//! [`Stats`] with its reason; a file that is not a capture, or is cut or corrupt, is an
//! [`Error`] naming the byte offset. *Invariant:* no network, no clock, no scenario.

pub mod craft;
pub mod decode;
pub mod file;
pub mod h2;
pub mod har;
pub mod http1;
#[cfg(feature = "live-capture")]
pub mod live;
pub mod tcp;
pub mod tls;

use std::path::{Path, PathBuf};

pub use http1::{Exchange, Request, Response, body_hash};

/// A capture that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {msg}", path.display(), offset.map(|o| format!(" (byte {o})")).unwrap_or_default())]
pub struct Error {
    /// The file.
    pub path: PathBuf,
    /// Where in it, when known.
    pub offset: Option<u64>,
    /// What is wrong, and what to do.
    pub msg: String,
}

impl Error {
    fn at(path: &Path, offset: u64, msg: impl Into<String>) -> Self {
        Error { path: path.to_path_buf(), offset: Some(offset), msg: msg.into() }
    }

    fn io(path: &Path, e: std::io::Error) -> Self {
        Error { path: path.to_path_buf(), offset: None, msg: format!("cannot read it: {e}") }
    }
}

/// Frame-level counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct FrameStats {
    /// Frames read.
    pub frames: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// Frames cut by the snap length (their missing bytes show up as TCP gaps).
    pub truncated: u64,
    /// Frames that are not TCP over IP.
    pub not_tcp: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// Frames that do not decode.
    pub malformed: u64,
    /// Frames of link types not read, by link type.
    pub unknown_linktypes: std::collections::BTreeMap<i32, u64>,
    /// Records out of time order (earlier than the one before; replay sorts them).
    pub out_of_time_order: u64,
    /// pcapng decryption secrets blocks (TLS key logs) seen.
    pub decryption_secrets: u64,
}

/// Everything counted while reading a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Stats {
    /// Frames.
    pub frames: FrameStats,
    /// TCP.
    pub tcp: tcp::TcpStats,
    /// HTTP.
    pub http: http1::HttpStats,
    /// TLS connections decrypted by tshark, when asked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypted: Option<Decrypted>,
    /// A HAR file's entries that could not be read, and the first reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub har_unread: Option<(u64, String)>,
}

/// What decrypting the TLS connections gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Decrypted {
    /// Connections followed.
    pub connections: u64,
    /// Connections beyond [`tls::MAX_CONNECTIONS`], not followed.
    pub over_limit: u64,
    /// Followed connections tshark printed that could not be told apart by their frames
    /// (their bytes are not read).
    pub unplaced: u64,
    /// TLS connections gauntlet's own reading saw (a handshake from the client): those
    /// beyond `connections + over_limit` were not found by tshark and are not read.
    pub seen: u64,
    /// HTTP read from them.
    pub http: http1::HttpStats,
}

/// An exchange waiting to be put in order: by time, then by reading order (a
/// `BinaryHeap<Reverse<Waiting>>` gives the earliest first).
#[derive(Debug)]
pub struct Waiting(pub u64, pub u64, pub Box<Exchange>);

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

/// What a reading thread (decrypted TLS, a HAR file) hands the [`Reader`].
#[derive(Debug)]
pub(crate) enum Piece {
    /// The next exchange, in time order (a HAR file: in the file's order).
    Exchange(Box<Exchange>),
    /// Reading stopped here.
    Failed(Error),
    /// The TLS connections are read: the counts.
    Decrypted(Decrypted),
    /// The HAR file is read: the counts, and the entries that could not be read.
    Har(http1::HttpStats, Option<(u64, String)>),
}

/// Exchanges read on a thread of their own, at most [`STREAMED_AHEAD`] ahead of the reader.
#[derive(Debug)]
struct Streamed {
    rx: std::sync::mpsc::Receiver<Piece>,
    head: Option<Exchange>,
    over: bool,
    /// Set when the reader goes away: the reading thread stops (and kills tshark).
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Exchanges a reading thread may have ready before the reader takes them.
const STREAMED_AHEAD: usize = 256;

/// A capture being read as exchanges.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    /// `None` for a HAR file.
    frames: Option<file::Frames>,
    tcp: tcp::Reassembler,
    http: http1::Http1,
    buf: Vec<u8>,
    frame_stats: FrameStats,
    last_ts: u64,
    ended: bool,
    /// Exchanges read on a thread (decrypted TLS, a HAR file), merged into the clear ones
    /// by time.
    streamed: Option<Streamed>,
    har_unread: Option<(u64, String)>,
    decrypted: Option<Decrypted>,
    /// A clear exchange held back while earlier streamed ones go first.
    held: Option<Exchange>,
}

impl Reader {
    /// Opens a pcap or pcapng file, or a HAR file (by its first bytes).
    pub fn open(path: &Path) -> Result<Self, Error> {
        use std::io::Read as _;
        let mut head = [0u8; 64];
        let n = crate::input::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| Error::io(path, e))?;
        if har::looks_like(&head[..n]) {
            let (tx, rx) = std::sync::mpsc::sync_channel(STREAMED_AHEAD);
            har::start(path, tx)?;
            let mut r = Self::new(None, path);
            r.streamed = Some(Streamed { rx, head: None, over: false, cancel: Default::default() });
            r.ended = true;
            return Ok(r);
        }
        Ok(Self::new(Some(file::Frames::open(path)?), path))
    }

    /// Reads a capture from memory (`name` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, name: &Path) -> Result<Self, Error> {
        Ok(Self::new(Some(file::Frames::from_reader(std::io::Cursor::new(bytes), name)?), name))
    }

    fn new(frames: Option<file::Frames>, path: &Path) -> Self {
        Reader {
            path: path.to_path_buf(),
            frames,
            tcp: tcp::Reassembler::new(),
            http: http1::Http1::new(),
            buf: Vec::with_capacity(2048),
            frame_stats: FrameStats::default(),
            last_ts: 0,
            ended: false,
            streamed: None,
            decrypted: None,
            held: None,
            har_unread: None,
        }
    }

    /// Also reads the TLS connections, decrypted by tshark with `keylog` (`None`: the
    /// secrets the pcapng embeds), streamed on a thread of its own (at most
    /// [`tls::MAX_CONNECTIONS`] connections) and merged with the clear ones by time.
    pub fn decrypting(mut self, keylog: Option<&Path>) -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(STREAMED_AHEAD);
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        tls::start(&self.path, keylog, tx, cancel.clone())?;
        self.streamed = Some(Streamed { rx, head: None, over: false, cancel });
        Ok(self)
    }

    /// The next exchange, in the order they complete; `None` once the capture is done.
    pub fn next_exchange(&mut self) -> Result<Option<Exchange>, Error> {
        let clear = match self.held.take() {
            Some(x) => Some(x),
            None => self.next_clear()?,
        };
        let streamed_ts = self.next_streamed()?.map(|x| x.ts_ns);
        let take = |r: &mut Self| r.streamed.as_mut().and_then(|s| s.head.take());
        match (clear, streamed_ts) {
            (Some(x), Some(t)) if t < x.ts_ns => {
                self.held = Some(x);
                Ok(take(self))
            }
            (Some(x), _) => Ok(Some(x)),
            (None, _) => Ok(take(self)),
        }
    }

    /// The next streamed exchange (left in place), once its thread sent it.
    fn next_streamed(&mut self) -> Result<Option<&Exchange>, Error> {
        let Reader { streamed, decrypted, http, har_unread, path, .. } = self;
        let Some(s) = streamed.as_mut() else { return Ok(None) };
        while s.head.is_none() && !s.over {
            match s.rx.recv() {
                Ok(Piece::Exchange(x)) => s.head = Some(*x),
                Ok(Piece::Failed(e)) => {
                    s.over = true;
                    return Err(e);
                }
                Ok(Piece::Decrypted(d)) => {
                    s.over = true;
                    *decrypted = Some(d);
                }
                Ok(Piece::Har(h, unread)) => {
                    s.over = true;
                    http.stats = h;
                    *har_unread = unread;
                }
                Err(_) => {
                    s.over = true;
                    return Err(Error {
                        path: path.clone(),
                        offset: None,
                        msg: "its reading stopped before the end (the reading thread ended)".into(),
                    });
                }
            }
        }
        Ok(s.head.as_ref())
    }

    fn next_clear(&mut self) -> Result<Option<Exchange>, Error> {
        loop {
            if let Some(x) = self.http.out.pop_front() {
                return Ok(Some(x));
            }
            if self.ended {
                return Ok(None);
            }
            let Some(frames) = self.frames.as_mut() else {
                self.ended = true;
                continue;
            };
            match frames.next(&mut self.buf, &self.path)? {
                Some(f) => self.frame(f),
                None => {
                    self.ended = true;
                    self.tcp.finish(&mut self.http);
                }
            }
        }
    }

    fn frame(&mut self, f: file::Frame) {
        let st = &mut self.frame_stats;
        st.frames += 1;
        st.bytes += self.buf.len() as u64;
        if f.ts_ns < self.last_ts {
            st.out_of_time_order += 1;
        }
        self.last_ts = self.last_ts.max(f.ts_ns);
        if (f.orig_len as usize) > self.buf.len() {
            st.truncated += 1;
        }
        match decode::segment(f.linktype, &self.buf) {
            Ok(seg) => self.tcp.segment(&seg, f.ts_ns, &mut self.http),
            Err(decode::Skip::NotTcp) => st.not_tcp += 1,
            Err(decode::Skip::Fragment) => st.fragments += 1,
            Err(decode::Skip::Malformed(_)) => st.malformed += 1,
            Err(decode::Skip::Linktype(l)) => *st.unknown_linktypes.entry(l).or_default() += 1,
        }
    }

    /// Counts so far (complete once [`Reader::next_exchange`] returned `None`).
    pub fn stats(&self) -> Stats {
        let mut frames = self.frame_stats.clone();
        frames.decryption_secrets = self.frames.as_ref().map_or(0, |f| f.secrets);
        Stats {
            frames,
            tcp: self.tcp.stats,
            http: self.http.stats,
            decrypted: self.decrypted.clone(),
            har_unread: self.har_unread.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

//! HAR files (HTTP Archive 1.2, as browsers and proxies export them) → the same exchanges a
//! packet capture gives: each entry's request (method, URL, headers, body) and recorded
//! response status, timed by `startedDateTime`. Streamed: the JSON document is read as it
//! comes and each entry handed on as soon as it is read; entries that cannot be read are
//! counted, with the first reason.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::http1::{Exchange, HttpStats, Request, Response};
use super::{Error, Piece};

/// Whether `head` (a file's first bytes) looks like a HAR document rather than a capture.
pub fn looks_like(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Starts reading the HAR file at `path` on a thread that sends its entries to `to` in the
/// file's order, then [`Piece::Har`] with the counts. Streamed: one entry is held at a time,
/// whatever the file's size.
pub(super) fn start(path: &Path, to: SyncSender<Piece>) -> Result<(), Error> {
    let file = crate::input::open(path).map_err(|e| Error::io(path, e))?;
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("gauntlet-har".into())
        .spawn(move || {
            let mut emit = |x: Exchange| to.send(Piece::Exchange(Box::new(x))).is_ok();
            let piece = match read(file, &owned, &mut emit) {
                Ok(Some((http, unread))) => Piece::Har(http, unread),
                Ok(None) => return,
                Err(e) => Piece::Failed(e),
            };
            let _ = to.send(piece);
        })
        .map(drop)
        .map_err(|e| Error::io(path, e))
}

/// The most bytes one entry (or one key) may take: what is held while it is read.
pub const MAX_ENTRY: u64 = 16 << 20;

/// Where reading is, and where the piece held in memory began (`u64::MAX`: nothing is held,
/// a skipped value streams by).
#[derive(Debug, Default)]
struct Marks {
    at: Cell<u64>,
    held_from: Cell<u64>,
    /// The line being read (from 1) and where it starts: serde_json's error positions are
    /// line and column, and it reads a few bytes past an error before it reports it.
    line: Cell<(u64, u64)>,
    /// The line before, for an error reported just after a line break.
    previous: Cell<(u64, u64)>,
}

impl Marks {
    fn hold(&self) {
        self.held_from.set(self.at.get());
    }
    fn skip(&self) {
        self.held_from.set(u64::MAX);
    }

    /// The byte offset of serde_json's `line`:`column` (both from 1), if it is one of the
    /// last two lines read.
    fn offset(&self, line: usize, column: usize) -> Option<u64> {
        let col = (column as u64).saturating_sub(1);
        [self.line.get(), self.previous.get()]
            .into_iter()
            .find(|(l, _)| *l == line as u64)
            .map(|(_, start)| start + col)
    }
}

/// A reader that counts the bytes taken from it (serde_json reads one byte at a time from a
/// buffered reader, so the count is where an error is) and refuses to go on past
/// [`MAX_ENTRY`] bytes of one held piece.
struct Counted<R> {
    inner: R,
    marks: Rc<Marks>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = self.marks.at.get();
        if at.saturating_sub(self.marks.held_from.get()) > MAX_ENTRY {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("one entry (or key) over {} MiB is not read", MAX_ENTRY >> 20),
            ));
        }
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                let (line, _) = self.marks.line.get();
                self.marks.previous.set(self.marks.line.get());
                self.marks.line.set((line + 1, at + i as u64 + 1));
            }
        }
        self.marks.at.set(at + n as u64);
        Ok(n)
    }
}

/// What reading a HAR file gave: the counts, and how many entries could not be read with
/// the first reason.
pub type Read = (HttpStats, Option<(u64, String)>);

/// Reads the HAR document from `file` (named `path` in errors), handing each entry to `emit`
/// (false: stop); the counts and the first entry that could not be read (with how many could
/// not), or `None` when `emit` stopped it.
pub fn read(
    file: impl std::io::Read,
    path: &Path,
    emit: &mut dyn FnMut(Exchange) -> bool,
) -> Result<Option<Read>, Error> {
    let marks = Rc::new(Marks::default());
    marks.line.set((1, 0));
    let counted = Counted { inner: std::io::BufReader::with_capacity(64 << 10, file), marks: marks.clone() };
    let mut de = serde_json::Deserializer::from_reader(counted);
    let mut st = State {
        emit,
        marks: marks.clone(),
        stats: HttpStats::default(),
        first_problem: None,
        conns: HashMap::new(),
        index: 0,
        entries: false,
        stopped: false,
    };
    st.marks.hold();
    let res = DeserializeSeed::deserialize(Doc(&mut st), &mut de).and_then(|()| de.end());
    if st.stopped {
        return Ok(None);
    }
    if let Err(e) = res {
        let offset = marks.offset(e.line(), e.column()).unwrap_or_else(|| marks.at.get().saturating_sub(1));
        let what = if e.is_io() { "cannot read it" } else { "not a HAR (JSON) file" };
        return Err(Error::at(path, offset, format!("{what}: {e}")));
    }
    if !st.entries {
        return Err(Error::at(path, 0, "a HAR file has `log.entries`; this JSON has none"));
    }
    let unread = st.first_problem.map(|p| (st.stats.incomplete, p));
    Ok(Some((st.stats, unread)))
}

struct State<'a> {
    emit: &'a mut dyn FnMut(Exchange) -> bool,
    marks: Rc<Marks>,
    stats: HttpStats,
    first_problem: Option<String>,
    /// Connection ids by the HAR's `connection` names.
    conns: HashMap<String, u64>,
    index: u64,
    /// `log.entries` was seen.
    entries: bool,
    /// `emit` said stop.
    stopped: bool,
}

impl State<'_> {
    /// The next key of `map` (held while it is read).
    fn key<'de, A: MapAccess<'de>>(&self, map: &mut A) -> Result<Option<String>, A::Error> {
        self.marks.hold();
        map.next_key::<String>()
    }

    /// One entry, read or counted; false: stop.
    fn entry(&mut self, e: &serde_json::Value) -> bool {
        let i = self.index;
        self.index += 1;
        match entry(e) {
            Ok((ts_ns, request, response, server, conn)) => {
                self.stats.requests += 1;
                if response.is_some() {
                    self.stats.answered += 1;
                } else {
                    self.stats.unanswered += 1;
                }
                let conn = match conn {
                    Some(c) => {
                        let next = self.conns.len() as u64;
                        *self.conns.entry(c).or_insert(next)
                    }
                    None => (1 << 32) + i,
                };
                let unknown: SocketAddr = ([0, 0, 0, 0], 0).into();
                (self.emit)(Exchange {
                    conn,
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    ts_ns,
                    client: unknown,
                    server: server.unwrap_or(unknown),
                    request,
                    response,
                    websocket: false,
                    session: None,
                    client_cert: None,
                })
            }
            Err(why) => {
                self.stats.incomplete += 1;
                self.first_problem.get_or_insert_with(|| format!("entries[{i}]: {why}"));
                true
            }
        }
    }
}

/// Why reading stopped when the reader went away (never shown).
const STOP: &str = "stopped";

/// The document: `{"log": {...}, ...}`.
struct Doc<'s, 'a>(&'s mut State<'a>);
/// `log`: `{"entries": [...], ...}`.
struct Log<'s, 'a>(&'s mut State<'a>);
/// `log.entries`: each entry read as it comes.
struct Entries<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for Doc<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Doc<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a HAR document (an object with `log`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = self.0.key(&mut map)? {
            if k == "log" {
                map.next_value_seed(Log(&mut *self.0))?;
            } else {
                self.0.marks.skip();
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Log<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Log<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`log` as an object with `entries`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = self.0.key(&mut map)? {
            if k == "entries" {
                map.next_value_seed(Entries(&mut *self.0))?;
            } else {
                self.0.marks.skip();
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`log.entries` as a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.entries = true;
        loop {
            self.0.marks.hold();
            let Some(e) = seq.next_element::<serde_json::Value>()? else { break };
            if !self.0.entry(&e) {
                self.0.stopped = true;
                return Err(de::Error::custom(STOP));
            }
        }
        Ok(())
    }
}

type Entry = (u64, Request, Option<Response>, Option<SocketAddr>, Option<String>);

fn entry(e: &serde_json::Value) -> Result<Entry, String> {
    let s = |p: &str| e.pointer(p).and_then(|v| v.as_str());
    let started = s("/startedDateTime").ok_or("no `startedDateTime`")?;
    let ts = time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
        .map_err(|err| format!("`startedDateTime` {started:?}: {err}"))?;
    let ts_ns = u64::try_from(ts.unix_timestamp_nanos()).map_err(|_| "a time before 1970")?;
    let method = s("/request/method").ok_or("no `request.method`")?.to_string();
    let url =
        url::Url::parse(s("/request/url").ok_or("no `request.url`")?).map_err(|err| format!("`request.url`: {err}"))?;
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let headers_of = |p: &str| -> Vec<(String, Vec<u8>)> {
        e.pointer(p)
            .and_then(|v| v.as_array())
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| {
                        Some((h.get("name")?.as_str()?.to_string(), h.get("value")?.as_str()?.as_bytes().to_vec()))
                    })
                    // HTTP/2 pseudo-headers are the method, path and authority already read.
                    .filter(|(n, _)| !n.starts_with(':'))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut headers = headers_of("/request/headers");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        headers.insert(0, ("host".to_string(), host.into_bytes()));
    }
    let text = s("/request/postData/text").unwrap_or("").as_bytes();
    // Held as a capture's request body is: at most its first MiB, the cut flagged.
    let body_truncated = text.len() > super::http1::MAX_REQUEST_BODY;
    let body = text[..text.len().min(super::http1::MAX_REQUEST_BODY)].to_vec();
    let request = Request { method, target, minor: 1, headers, body, body_truncated };
    let status = e.pointer("/response/status").and_then(|v| v.as_u64()).unwrap_or(0);
    // Status 0: the browser recorded no answer (blocked, aborted).
    let response = (100..600).contains(&status).then(|| {
        let text = s("/response/content/text").unwrap_or("");
        Response {
            status: status as u16,
            headers: headers_of("/response/headers"),
            body_len: e.pointer("/response/content/size").and_then(|v| v.as_u64()).unwrap_or(text.len() as u64),
            body_hash: super::http1::fnv(super::http1::FNV_OFFSET, text.as_bytes()),
            body_prefix: text.as_bytes().iter().take(super::http1::RESPONSE_PREFIX).copied().collect(),
            ts_ns,
        }
    });
    let server = s("/serverIPAddress").and_then(|a| {
        let ip: std::net::IpAddr = a.trim_matches(['[', ']']).parse().ok()?;
        Some(SocketAddr::new(ip, url.port_or_known_default().unwrap_or(0)))
    });
    Ok((ts_ns, request, response, server, s("/connection").map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> String {
        format!(
            r#"{{"startedDateTime":"2026-01-01T00:00:{:02}Z","connection":"c{}","request":{{"method":"GET","url":"https://shop.test/p/{i}","headers":[]}},"response":{{"status":200,"headers":[],"content":{{"size":0}}}}}}"#,
            i % 60,
            i % 3
        )
    }

    fn all(text: &str) -> Result<(Vec<Exchange>, Read), Error> {
        let mut out = Vec::new();
        let (stats, unread) = read(text.as_bytes(), Path::new("t.har"), &mut |x| {
            out.push(x);
            true
        })?
        .expect("not stopped");
        Ok((out, (stats, unread)))
    }

    #[test]
    fn entries_stream_in_file_order_around_skipped_values() {
        let entries: Vec<String> = (0..5).map(entry).collect();
        // Whatever else the document holds (pages, creator, unknown keys) is skipped, even
        // when it is larger than an entry may be.
        let big = "x".repeat((MAX_ENTRY + 10) as usize);
        let text = format!(
            r#"{{"log":{{"version":"1.2","pages":[{{"title":"{big}"}}],"entries":[{}],"creator":{{"name":"t"}}}},"other":1}}"#,
            entries.join(",")
        );
        let (xs, (stats, unread)) = all(&text).unwrap();
        assert_eq!(
            xs.iter().map(|x| x.request.path().to_string()).collect::<Vec<_>>(),
            ["/p/0", "/p/1", "/p/2", "/p/3", "/p/4"]
        );
        assert_eq!((stats.requests, stats.answered, unread), (5, 5, None));
        assert_eq!(xs[0].conn, xs[3].conn, "one HAR connection, one id");
        assert_ne!(xs[0].conn, xs[1].conn);
    }

    #[test]
    fn a_broken_document_names_the_byte_it_stops_at() {
        let text = format!(r#"{{"log":{{"entries":[{},{{"startedDateTime": }}]}}}}"#, entry(0));
        let err = all(&text).unwrap_err();
        let at = text.find(": }").unwrap() as u64 + 2;
        assert_eq!(err.offset, Some(at), "{err}");
        assert!(err.msg.starts_with("not a HAR (JSON) file"), "{err}");
        let lines = format!("{{\n \"log\": {{\n  \"entries\": [\n   {},\n   nope\n]}}}}", entry(0));
        let err = all(&lines).unwrap_err();
        // `n` starts a `null`; the `o` after it is the byte that is wrong.
        assert_eq!(err.offset, Some(lines.find("nope").unwrap() as u64 + 1), "{err}");
        let err = all(r#"{"log":{"version":"1.2"}}"#).unwrap_err();
        assert!(err.msg.contains("has `log.entries`"), "{err}");
        let err = all("[1,2]").unwrap_err();
        assert!(err.msg.contains("a HAR document"), "{err}");
        assert!(all(&format!(r#"{{"log":{{"entries":[{}]}}}} trailing"#, entry(0))).is_err(), "one document only");
    }

    #[test]
    fn one_entry_over_the_cap_is_refused_not_held() {
        let body = "y".repeat((MAX_ENTRY + 1024) as usize);
        let text = format!(
            r#"{{"log":{{"entries":[{},{{"startedDateTime":"2026-01-01T00:00:00Z","request":{{"method":"POST","url":"https://a/","postData":{{"text":"{body}"}}}}}}]}}}}"#,
            entry(0)
        );
        let err = all(&text).unwrap_err();
        assert!(err.msg.contains("over 16 MiB"), "{err}");
    }

    #[test]
    fn a_reader_that_goes_away_stops_the_reading() {
        let entries: Vec<String> = (0..50).map(entry).collect();
        let text = format!(r#"{{"log":{{"entries":[{}]}}}}"#, entries.join(","));
        let mut n = 0;
        let got = read(text.as_bytes(), Path::new("t.har"), &mut |_| {
            n += 1;
            n < 3
        })
        .unwrap();
        assert!(got.is_none());
        assert_eq!(n, 3, "nothing read after the stop");
    }

    #[test]
    fn unreadable_entries_are_counted_with_the_first_reason() {
        let text = format!(r#"{{"log":{{"entries":[{},{{"request":{{}}}},{}]}}}}"#, entry(0), entry(1));
        let (xs, (stats, unread)) = all(&text).unwrap();
        assert_eq!(xs.len(), 2);
        assert_eq!(stats.incomplete, 1);
        assert_eq!(unread, Some((1, "entries[1]: no `startedDateTime`".to_string())));
    }
}

//! HAR files (HTTP Archive 1.2, as browsers and proxies export them) → the same exchanges a
//! packet capture gives: each entry's request (method, URL, headers, body) and recorded
//! response status, timed by `startedDateTime`. Read whole (HAR is one JSON document);
//! entries that cannot be read are counted, with the first reason.

use std::net::SocketAddr;
use std::path::Path;

use super::Error;
use super::http1::{Exchange, HttpStats, Request, Response};

/// The largest HAR file read (it is parsed whole).
pub const MAX_BYTES: u64 = 512 << 20;

/// Whether `head` (a file's first bytes) looks like a HAR document rather than a capture.
pub fn looks_like(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The entries of the HAR file at `path`, in time order, and what could not be read.
pub fn read(path: &Path) -> Result<(Vec<Exchange>, HttpStats, Option<String>), Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_BYTES {
        return Err(Error::at(
            path,
            0,
            format!("a HAR file over {} MiB is not read (it is parsed whole)", MAX_BYTES >> 20),
        ));
    }
    let bytes = crate::input::read(path, crate::input::HAR).map_err(|e| Error::io(path, e))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json gives line and column; the byte offset follows from them.
        let offset =
            bytes.split(|b| *b == b'\n').take(e.line().saturating_sub(1)).map(|l| l.len() as u64 + 1).sum::<u64>()
                + e.column().saturating_sub(1) as u64;
        Error::at(path, offset, format!("not a HAR (JSON) file: {e}"))
    })?;
    let Some(entries) = doc.pointer("/log/entries").and_then(|v| v.as_array()) else {
        return Err(Error::at(path, 0, "a HAR file has `log.entries`; this JSON has none"));
    };
    let mut stats = HttpStats::default();
    let (mut out, mut first_problem) = (Vec::new(), None);
    let unknown: SocketAddr = ([0, 0, 0, 0], 0).into();
    let mut conns: Vec<String> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match entry(e) {
            Ok((ts_ns, request, response, server, conn)) => {
                stats.requests += 1;
                if response.is_some() {
                    stats.answered += 1;
                } else {
                    stats.unanswered += 1;
                }
                let conn = match conn {
                    Some(c) => conns.iter().position(|x| *x == c).unwrap_or_else(|| {
                        conns.push(c);
                        conns.len() - 1
                    }) as u64,
                    None => (1 << 32) + i as u64,
                };
                out.push(Exchange {
                    conn,
                    index: i as u32,
                    ts_ns,
                    client: unknown,
                    server: server.unwrap_or(unknown),
                    request,
                    response,
                    websocket: false,
                    session: None,
                    client_cert: None,
                });
            }
            Err(why) => {
                stats.incomplete += 1;
                first_problem.get_or_insert_with(|| format!("entries[{i}]: {why}"));
            }
        }
    }
    out.sort_by_key(|x| x.ts_ns);
    Ok((out, stats, first_problem))
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
    let body = s("/request/postData/text").unwrap_or("").as_bytes().to_vec();
    let body_truncated = body.len() > super::http1::MAX_REQUEST_BODY;
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

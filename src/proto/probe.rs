//! One request, shown whole: what `gauntlet probe` sends and what came back. The request goes
//! out exactly as a run sends it (HTTP/1.1: the same pre-serialised head; HTTP/2 and HTTP/3:
//! the same `http::Request`), over a connection opened as the check's identity; the answer's
//! status, headers and first bytes of the body are kept. Credential header values are
//! redacted in everything kept here.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{Connector, Stream};
use super::{Prepared, Tag};
use crate::conformance::{Broke, ErrorKind, Outcome, is_secret_header};

/// How much of an answer's body is kept.
pub const BODY_KEPT: usize = 1024;

/// Which protocol the probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speak {
    /// HTTP/1.1.
    H1,
    /// HTTP/2.
    H2,
    /// Whatever ALPN picks (h2 or HTTP/1.1).
    Auto,
}

/// What one probe saw.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `h1`, `h2` or `h3`: what was spoken.
    pub protocol: &'static str,
    /// The request as sent, one line per header (credential values redacted).
    pub request: Vec<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// The answer's headers (credential values redacted), when there was an answer.
    pub headers: Vec<(String, String)>,
    /// The first [`BODY_KEPT`] bytes of the answer's body.
    pub body: Vec<u8>,
    /// From the send to the answer (or the failure).
    pub elapsed: Duration,
}

/// `value` as it may be shown: credentials become their scheme and length.
pub fn shown(name: &str, value: &[u8]) -> String {
    if is_secret_header(name) {
        let text = String::from_utf8_lossy(value);
        let scheme = text.split_once(' ').map(|(s, _)| format!("{s} ")).unwrap_or_default();
        return format!("{scheme}<redacted, {} bytes>", value.len());
    }
    String::from_utf8_lossy(value).chars().filter(|c| !c.is_control()).collect()
}

fn request_lines(req: &http::Request<http_body_util::Full<bytes::Bytes>>, version: &str) -> Vec<String> {
    let uri = req.uri().to_string();
    let mut out = vec![format!("{} {} {version}", req.method(), crate::conformance::redact_query(&uri))];
    for (n, v) in req.headers() {
        out.push(format!("{}: {}", n, shown(n.as_str(), v.as_bytes())));
    }
    out
}

fn response_headers(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(n, v)| (n.as_str().to_string(), shown(n.as_str(), v.as_bytes()))).collect()
}

/// Sends `req` once as its identity over `speak` and keeps what came back, within `timeout`.
pub async fn exchange(
    connector: &Connector,
    speak: Speak,
    req: &Prepared,
    tag: Tag<'_>,
    timeout: Duration,
) -> Exchange {
    let start = Instant::now();
    let mut ex = Exchange {
        protocol: "h1",
        request: Vec::new(),
        outcome: Outcome::TimedOut,
        headers: Vec::new(),
        body: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let run = async {
        let (stream, alpn) = connector.dial(req.identity).await?;
        let h2 = match speak {
            Speak::H1 => false,
            Speak::H2 => true,
            Speak::Auto => alpn.as_deref() == Some(b"h2".as_slice()),
        };
        if h2 {
            ex.protocol = "h2";
            http2(stream, req, tag, &mut ex).await
        } else {
            http1(stream, req, tag, &mut ex).await
        }
    };
    let r = tokio::time::timeout(timeout, run).await;
    ex.outcome = match r {
        Ok(Ok(status)) => Outcome::Answered { status },
        Ok(Err(o)) => o,
        Err(_) => Outcome::TimedOut,
    };
    ex.elapsed = start.elapsed();
    ex
}

/// HTTP/3: the same over a QUIC connection of `h3`.
pub async fn exchange_h3(h3: &super::h3::Http3, req: &Prepared, tag: Tag<'_>, timeout: Duration) -> Exchange {
    let start = Instant::now();
    let (parts, _) = req.request(tag, true).into_parts();
    let shown_req = http::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::new()));
    let mut ex = Exchange {
        protocol: "h3",
        request: request_lines(&shown_req, "HTTP/3"),
        outcome: Outcome::TimedOut,
        headers: Vec::new(),
        body: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let run = async {
        use super::Protocol as _;
        let mut conn = h3.connect(req.identity).await?;
        h3.exchange_keeping(&mut conn, req, tag, BODY_KEPT).await
    };
    ex.outcome = match tokio::time::timeout(timeout, run).await {
        Ok(Ok((head, body))) => {
            ex.headers = response_headers(&head.headers);
            ex.body = body;
            Outcome::Answered { status: head.status.as_u16() }
        }
        Ok(Err(o)) => o,
        Err(_) => Outcome::TimedOut,
    };
    ex.elapsed = start.elapsed();
    ex
}

async fn http2(stream: Stream, req: &Prepared, tag: Tag<'_>, ex: &mut Exchange) -> Result<u16, Outcome> {
    // Shown as hyper would form it; sent by the run's own client.
    ex.request = request_lines(&req.request(tag, true), "HTTP/2");
    let mut conn = super::h2::handshake(stream).await?;
    let keep = Prepared { keep_body: true, ..req.clone() };
    let (answer, headers) = super::h2::exchange_keeping(&mut conn, &keep, tag).await?;
    ex.headers = response_headers(&headers);
    ex.body = answer.body.unwrap_or_default();
    ex.body.truncate(BODY_KEPT);
    Ok(answer.status)
}

async fn http1(mut stream: Stream, req: &Prepared, tag: Tag<'_>, ex: &mut Exchange) -> Result<u16, Outcome> {
    let mut wire = Vec::with_capacity(512);
    req.write_h1(&mut wire, tag);
    if req.websocket.is_some() {
        // The key is random per upgrade in a run; one for the probe.
        let at = wire.len() - 2 - req.body.len();
        wire.splice(at..at, format!("sec-websocket-key: {}\r\n", super::ws::new_key()).into_bytes());
    }
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").map_or(wire.len(), |i| i + 2);
    for line in String::from_utf8_lossy(&wire[..head_end]).lines().filter(|l| !l.is_empty()) {
        ex.request.push(match line.split_once(": ") {
            Some((n, v)) => format!("{n}: {}", shown(n, v.as_bytes())),
            None => line.to_string(),
        });
    }
    let fail = |e: std::io::Error| super::failure(&e, Broke::Fresh);
    stream.write_all(&wire).await.map_err(fail)?;
    stream.flush().await.map_err(fail)?;
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(|e| super::failure(&e, Broke::Fresh))?;
        if n == 0 {
            if buf.is_empty() {
                return Err(Outcome::broken(
                    ErrorKind::Reset,
                    Broke::Fresh,
                    "the server closed the connection without answering",
                ));
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                if (100..200).contains(&status) && status != 101 {
                    buf.drain(..len);
                    continue;
                }
                ex.headers =
                    resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), shown(h.name, h.value))).collect();
                let mut body: Vec<u8> = buf[len..].to_vec();
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
                let want = length.unwrap_or(BODY_KEPT).min(BODY_KEPT);
                let no_body = req.method == http::Method::HEAD || matches!(status, 101 | 204 | 304);
                while !no_body && body.len() < want {
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(BODY_KEPT);
                ex.body = if no_body { Vec::new() } else { body };
                return Ok(status);
            }
            Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => {}
            Ok(httparse::Status::Partial) => {
                return Err(Outcome::broken(ErrorKind::Protocol, Broke::Other, "response head larger than 64 KiB"));
            }
            Err(e) => {
                return Err(Outcome::broken(
                    ErrorKind::Protocol,
                    Broke::Other,
                    format!("malformed response head ({e})"),
                ));
            }
        }
    }
    Err(Outcome::broken(ErrorKind::Reset, Broke::Other, "the connection closed in the middle of the response head"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_shown_as_scheme_and_length() {
        assert_eq!(super::shown("authorization", b"Bearer abc.def.ghi"), "Bearer <redacted, 18 bytes>");
        assert_eq!(super::shown("x-api-key", b"k-123"), "<redacted, 5 bytes>");
        assert_eq!(super::shown("x-forwarded-user", b"alice"), "alice");
    }
}

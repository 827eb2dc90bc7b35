//! Dialing: TCP (no Nagle), then TLS as one identity, with ALPN. Shared by every protocol.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::conformance::{Broke, ErrorKind, Outcome};
use crate::scenario::{Identity, Target};
use crate::tls;

/// Connector errors (at construction; dialing failures are outcomes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An identity's TLS material was rejected.
    #[error("identity `{name}`: {source}")]
    Identity {
        /// Identity name.
        name: String,
        /// Why.
        #[source]
        source: tls::Error,
    },
    /// The target name does not work for TLS.
    #[error("target: {0}")]
    Target(#[source] tls::Error),
    /// HTTP/3 needs `https://`.
    #[error("HTTP/3 needs an https:// target")]
    NotTls,
    /// The target host did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host.
        host: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The target's first address.
pub(crate) async fn resolve(target: &Target) -> Result<SocketAddr, Error> {
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .and_then(|mut a| a.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
        .map_err(|source| Error::Resolve { host: target.host.clone(), source })
}

/// Opens connections to the target as a given identity.
pub struct Connector {
    addr: SocketAddr,
    /// Dial here instead (an impairment link in front of the target); SNI is unchanged.
    via: Option<SocketAddr>,
    server_name: ServerName<'static>,
    /// One config per identity (`None` on plain http).
    configs: Vec<Option<TlsConnector>>,
}

impl Connector {
    /// Builds one TLS config per identity, offering `alpn`.
    pub async fn new(target: &Target, identities: &[Identity], alpn: &[&[u8]]) -> Result<Self, Error> {
        let addr = resolve(target).await?;
        let server_name = tls::server_name(&target.server_name).map_err(Error::Target)?;
        // One config per credential: identities in order, each pool member on its own.
        let mut configs = Vec::with_capacity(identities.len());
        for id in identities {
            for m in 0..id.members() {
                if !target.tls {
                    configs.push(None);
                    continue;
                }
                let material = id.cert(m).map(|c| (c.chain.as_slice(), &c.key));
                let cfg: Arc<ClientConfig> = tls::client_config(&target.ca, material, alpn)
                    .map_err(|source| Error::Identity { name: id.name.clone(), source })?;
                configs.push(Some(TlsConnector::from(cfg)));
            }
        }
        Ok(Connector { addr, via: None, server_name, configs })
    }

    /// The resolved target address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends every connection through `link` (which forwards to the target).
    pub fn via(&mut self, link: SocketAddr) {
        self.via = Some(link);
    }

    /// Dials as credential `identity` (see [`crate::scenario::Scenario::slots`]); returns the
    /// stream and the negotiated ALPN protocol.
    pub(crate) async fn dial(&self, identity: usize) -> Result<(Stream, Option<Vec<u8>>), Outcome> {
        let to = self.via.unwrap_or(self.addr);
        let tcp = TcpStream::connect(to)
            .await
            .map_err(|e| Outcome::broken(ErrorKind::Connect, Broke::Other, format!("connect to {to}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match self.configs.get(identity).and_then(Option::as_ref) {
            None => Ok((Stream::Plain(tcp), None)),
            Some(c) => match c.connect(self.server_name.clone(), Counted { io: tcp, read: 0 }).into_fallible().await {
                Ok(s) => {
                    let alpn = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    Ok((Stream::Tls(Box::new(s)), alpn))
                }
                Err((e, io)) => Err(handshake_failure(&e, io.read > 0)),
            },
        }
    }
}

/// A failed handshake. A peer alert is the gateway refusing us, and so is the peer closing
/// or resetting mid-handshake *after it spoke TLS* (`spoke`: it sent at least one byte); a
/// peer that closes before any byte of a ServerHello refused nothing — it is not speaking TLS
/// at all (a crashed or misrouted gateway) and that is a connection error. A local
/// verification failure is our error, with rustls's reason as the cause.
pub(crate) fn handshake_failure(e: &io::Error, spoke: bool) -> Outcome {
    if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return super::tls_failure(t);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe if spoke => {
            Outcome::TlsRejected
        }
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Outcome::broken(
            ErrorKind::Connect,
            Broke::Other,
            format!("the server closed the connection before any TLS handshake byte ({e})"),
        ),
        io::ErrorKind::TimedOut => Outcome::TimedOut,
        _ => Outcome::broken(ErrorKind::Tls, Broke::Other, format!("TLS handshake: {e}")),
    }
}

/// A TCP stream that counts the bytes read from it (to tell a peer that spoke TLS and then
/// closed from one that never spoke at all).
pub(crate) struct Counted {
    io: TcpStream,
    read: u64,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        me.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A plain or TLS stream.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<Counted>>),
}

impl Stream {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

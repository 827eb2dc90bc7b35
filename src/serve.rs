//! The accept loop shared by gauntlet's in-process servers (oracle, reference gateway, test
//! target): accept until stopped, one tracked task per connection, and a stop that waits for
//! every connection task to end.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting, tells connections to end, and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Serves `listener`, calling `on_conn` for every accepted connection (Nagle off) with a
/// token that is cancelled when the server stops.
pub(crate) fn spawn<F, Fut>(listener: TcpListener, on_conn: F) -> std::io::Result<Server>
where
    F: Fn(TcpStream, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let conns = tokio_util::task::TaskTracker::new();
        loop {
            let tcp = tokio::select! {
                r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
                _ = token.cancelled() => break,
            };
            let _ = tcp.set_nodelay(true);
            conns.spawn(on_conn(tcp, token.clone()));
        }
        conns.close();
        conns.wait().await;
    });
    Ok(Server { addr, stop, task })
}

/// Serves HTTP/1.1 (with upgrades) and HTTP/2 (auto-detected) on one connection — over TLS when `tls` is
/// given (a refused handshake just ends the connection) — until it closes or `stop` fires.
pub(crate) async fn http<S>(tcp: TcpStream, tls: Option<&tokio_rustls::TlsAcceptor>, svc: S, stop: &CancellationToken)
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<http_body_util::Full<bytes::Bytes>>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    match tls {
        Some(a) => {
            let Ok(stream) = a.accept(tcp).await else { return };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
        }
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
            tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
        }
    }
}

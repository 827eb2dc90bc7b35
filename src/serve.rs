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

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            // A client that connects and never completes the handshake neither holds the
            // connection past HANDSHAKE_TIMEOUT nor holds up a stop.
            let stream = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(tcp)) => match r {
                    Ok(Ok(s)) => s,
                    _ => return,
                },
                _ = stop.cancelled() => return,
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
        }
        None => {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
            tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
        }
    }
}

#[cfg(test)]
mod tests {
    /// A client that opens a TLS connection and never says a word does not hold up a stop
    /// (a standalone oracle ignored SIGTERM while one did).
    #[tokio::test]
    async fn a_stalled_tls_handshake_does_not_hold_up_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::pki::init(dir.path(), false).unwrap();
        let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
        let chain = rustls_pki_types::pem::PemObject::pem_slice_iter(&read("server.pem"))
            .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
            .unwrap();
        let key = rustls_pki_types::pem::PemObject::from_pem_slice(&read("server.key")).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(chain, key, None, false, &[b"http/1.1"]).unwrap(),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = super::spawn(l, move |tcp, stop| {
            let acceptor = acceptor.clone();
            async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::new(),
                    )))
                });
                super::http(tcp, Some(&acceptor), svc, &stop).await;
            }
        })
        .unwrap();
        let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), server.stop()).await.expect("the stop was not held up");
    }
}

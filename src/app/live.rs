//! `--metrics-listen ADDR`: serves the run's live metrics at `/metrics` in the OpenMetrics text
//! format (`report::openmetrics`) while it runs, for Prometheus (and so Grafana). One server
//! for the whole command; each run of it (a parity run has one per protocol) points it at its
//! own snapshots.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Snapshot;
use crate::report::openmetrics::{self, CONTENT_TYPE, Names};

/// One run's snapshots and what to label them with.
type Shown = (watch::Receiver<Arc<Snapshot>>, Arc<Names>);

/// What the server shows: the current run's snapshots and names.
#[derive(Debug, Default)]
pub(super) struct Live {
    now: Mutex<Option<Shown>>,
}

impl Live {
    /// From now on, show this run.
    pub(super) fn show(&self, rx: watch::Receiver<Arc<Snapshot>>, names: Names) {
        if let Ok(mut now) = self.now.lock() {
            *now = Some((rx, Arc::new(names)));
        }
    }

    fn page(&self) -> Option<String> {
        let now = self.now.lock().ok()?;
        let (rx, names) = now.as_ref()?;
        let snap = rx.borrow().clone();
        Some(openmetrics::render(&snap, names))
    }
}

/// Starts serving `live` on `listener`.
pub(super) fn serve(listener: TcpListener, live: Arc<Live>) -> std::io::Result<crate::serve::Server> {
    crate::serve::spawn(listener, move |tcp, stop| {
        let live = live.clone();
        async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let live = live.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&http::Method::GET, "/metrics") => match live.page() {
                            Some(page) => http::Response::builder()
                                .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                                .body(Full::new(Bytes::from(page))),
                            None => http::Response::builder()
                                .status(http::StatusCode::SERVICE_UNAVAILABLE)
                                .body(Full::new(Bytes::from_static(b"the run has not started yet\n"))),
                        },
                        _ => http::Response::builder()
                            .status(http::StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"gauntlet serves /metrics\n"))),
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            crate::serve::http(tcp, None, svc, &stop).await;
        }
    })
}

//! A TCP proxy that a test can cut and restore, to take a server (the shared Postgres) away from
//! the code under test without stopping it for everyone else.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards connections on a local port to `upstream` while it is up. [`TcpProxy::cut`] closes
/// every forwarded connection and the listening socket (new connections are refused, as by a
/// stopped server); [`TcpProxy::restore`] listens on the same port again.
pub struct TcpProxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding from an ephemeral local port to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watcher) = watch::channel(true);
        let task = tokio::spawn(serve(listener, addr, upstream.to_owned(), watcher));
        Self { addr, up, task }
    }

    /// The local address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes all forwarded connections and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Dropping `up` ends every forwarding task.
    }
}

/// Accepts while up; drops the listener when cut and binds the same address again on restore.
async fn serve(
    first: TcpListener,
    addr: SocketAddr,
    upstream: String,
    mut up: watch::Receiver<bool>,
) {
    let mut listener = Some(first);
    loop {
        let current = match listener.take() {
            Some(listener) => listener,
            None => {
                if up.wait_for(|up| *up).await.is_err() {
                    return;
                }
                bind_again(addr).await
            }
        };
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(forward(client, upstream.clone(), up.clone()));
                    }
                }
                changed = up.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*up.borrow() {
                        break; // `current` is dropped: the port refuses connections.
                    }
                }
            }
        }
    }
}

/// Binds `addr` again (retrying briefly should the port still be in use).
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let mut last_error = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("binding {addr} again: {last_error:?}");
}

/// Copies bytes both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, upstream: String, mut up: watch::Receiver<bool>) {
    if !*up.borrow() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
    // Both sockets are dropped here, which closes them.
}

//! A TCP proxy a test can cut: every open connection is dropped and new ones are refused, as
//! when the server behind it is killed; `restore` brings it back on the same address.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct TcpProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    serving: Option<JoinHandle<()>>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// A proxy in front of the Postgres server of `database_url`, and the same URL through it.
pub async fn postgres_behind_proxy(database_url: &str) -> (TcpProxy, String) {
    let (credentials, rest) = database_url
        .split_once('@')
        .expect("postgres://user@host/db");
    let (server, database) = rest.split_once('/').expect("postgres://user@host/db");
    let target = tokio::net::lookup_host(server)
        .await
        .expect("resolve the Postgres server")
        .next()
        .expect("an address for the Postgres server");
    let proxy = TcpProxy::start(target).await;
    let via_proxy = format!("{credentials}@{}/{database}", proxy.addr);
    (proxy, via_proxy)
}

impl TcpProxy {
    /// A proxy on a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self {
            addr,
            target,
            serving: Some(tokio::spawn(serve(listener, target))),
        }
    }

    /// Drops every connection and stops listening (connections are refused).
    pub fn cut(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn restore(&mut self) {
        self.cut();
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serving = Some(tokio::spawn(serve(listener, self.target)));
    }
}

async fn serve(listener: TcpListener, target: SocketAddr) {
    // Dropped with this task on `cut`, which aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

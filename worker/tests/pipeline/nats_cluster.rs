//! On a NATS cluster: three `nats-server`s started by the test on loopback ports, the stream
//! replicated three times (`NATS_STREAM_REPLICAS=3`), the workers given every server in
//! `NATS_URL`. Killing the stream's leader in the middle of the load loses nothing and
//! doubles nothing: every accepted registration is provisioned with one certificate, the
//! stream and the events table agree, and an analyst's durable consumer delivers every event.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::StreamExt;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack};

const PATIENCE: Duration = Duration::from_secs(120);
const DEVICES: usize = 300;

/// A three-node JetStream cluster on loopback ports; every node is killed on drop.
struct NatsCluster {
    dir: PathBuf,
    client_ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsCluster {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("dp-nats-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for node in 0..3 {
            let config = dir.join(format!("n{node}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{node}\nlisten: 127.0.0.1:{}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: dp-test, listen: 127.0.0.1:{}, routes: [{routes}] }}\n",
                    client_ports[node],
                    dir.join(format!("n{node}")).display(),
                    route_ports[node],
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join(format!("n{node}.log"))).unwrap();
            let child = Command::new(nats_server())
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("nats-server must be installed (scripts/services installs it)");
            nodes.push(Some(child));
        }
        let cluster = Self {
            dir,
            client_ports,
            nodes,
        };
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Every server, as `NATS_URL` lists them.
    fn url(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Until the cluster has elected its JetStream meta leader (a stream can be made).
    async fn wait_for_jetstream(&self) {
        let started = Instant::now();
        loop {
            // (`$JS.API.INFO` read raw: async-nats's account type wants fields that Debian's
            // nats-server 2.9 does not send.)
            let ready = async {
                let client =
                    async_nats::connect(format!("nats://127.0.0.1:{}", self.client_ports[0]))
                        .await
                        .ok()?;
                let answer = client.request("$JS.API.INFO", "".into()).await.ok()?;
                let answer: serde_json::Value = serde_json::from_slice(&answer.payload).ok()?;
                answer.get("error").is_none().then_some(())
            };
            if let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(3), ready).await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the cluster never became ready: {}",
                std::fs::read_to_string(self.dir.join("n0.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL of the node named `name` (`n0`…).
    fn kill(&mut self, name: &str) {
        let index: usize = name.trim_start_matches('n').parse().unwrap();
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nats_server() -> &'static str {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
}

fn jetstream_context(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client)
}

/// The stream's current leader and its replicas' count, as the cluster reports them.
async fn stream_cluster(stack: &Stack) -> (String, usize) {
    let started = Instant::now();
    loop {
        let js = jetstream_context(stack.nats_client().await);
        if let Ok(mut stream) = js.get_stream(&stack.stream).await {
            if let Ok(info) = stream.info().await {
                if let Some(cluster) = &info.cluster {
                    if let Some(leader) = &cluster.leader {
                        return (leader.clone(), info.config.num_replicas);
                    }
                }
            }
        }
        assert!(started.elapsed() < PATIENCE, "the stream has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn killing_the_stream_leader_mid_load_loses_and_doubles_nothing() {
    let mut cluster = NatsCluster::start().await;
    let mut stack = Stack::start_with_nats(cluster.url()).await;
    for _ in 0..2 {
        stack.spawn_worker_with_env(&[("NATS_STREAM_REPLICAS", "3".to_owned())]);
    }
    let (leader, replicas) = stream_cluster(&stack).await;
    assert_eq!(replicas, 3);
    // An analyst's durable consumer (replicated like the stream) reads through the loss too.
    let analyst = jetstream_context(stack.nats_client().await)
        .create_consumer_on_stream(
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("analytics".to_owned()),
                ..Default::default()
            },
            stack.stream.as_str(),
        )
        .await
        .unwrap();

    let bodies: Vec<_> = (0..DEVICES)
        .map(|_| registration(&unique_serial()))
        .collect();
    let (first, rest) = bodies.split_at(DEVICES / 3);
    let mut ids: Vec<Uuid> = join_all(first.iter().map(|b| stack.register(b))).await;
    // The leader goes while the first third is being relayed and provisioned.
    cluster.kill(&leader);
    let issued_at_kill = stack.count_events("CertificateIssued").await;
    ids.extend(join_all(rest.iter().map(|b| stack.register(b))).await);
    assert!((issued_at_kill as usize) < DEVICES);
    let (new_leader, _) = stream_cluster(&stack).await;
    assert_ne!(new_leader, leader, "another node leads the stream");

    assert_eq!(ids.len(), DEVICES);
    let events = stack
        .assert_provisioned_once_and_streamed(DEVICES, PATIENCE)
        .await;

    // The analyst's consumer delivers every event, once it is read to the end.
    let mut seen = std::collections::HashSet::new();
    let started = Instant::now();
    while seen.len() < events as usize {
        assert!(
            started.elapsed() < PATIENCE,
            "the analyst read {} of {events} events",
            seen.len()
        );
        let Ok(mut batch) = analyst
            .fetch()
            .max_messages(500)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            continue;
        };
        while let Some(Ok(message)) = batch.next().await {
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            seen.insert(id);
            let _ = message.ack().await;
        }
    }
    assert_eq!(seen.len(), events as usize);
}

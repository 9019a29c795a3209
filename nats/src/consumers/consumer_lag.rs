//! How far behind each durable consumer is, as gauges, every few seconds: messages not yet
//! delivered (`consumer_pending`) and delivered but not acknowledged (`consumer_ack_pending`).
//! For a projector, their sum is its read model's lag in events.

use std::time::Duration;

use async_nats::jetstream;

/// Reports the gauges of the consumers `names` on `stream`, for ever (the caller cancels).
pub(crate) async fn report_consumer_lag(
    js: jetstream::Context,
    stream: String,
    names: Vec<String>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        for name in &names {
            let info = async {
                let mut consumer: jetstream::consumer::PullConsumer =
                    js.get_consumer_from_stream(name, &stream).await?;
                Ok::<_, async_nats::Error>(consumer.info().await?.clone())
            };
            match tokio::time::timeout(Duration::from_secs(2), info).await {
                Ok(Ok(info)) => {
                    metrics::gauge!("consumer_pending", "consumer" => name.clone())
                        .set(info.num_pending as f64);
                    metrics::gauge!("consumer_ack_pending", "consumer" => name.clone())
                        .set(info.num_ack_pending as f64);
                }
                Ok(Err(e)) => tracing::debug!(consumer = %name, error = %e, "consumer info"),
                Err(_) => tracing::debug!(consumer = %name, "consumer info timed out"),
            }
        }
    }
}

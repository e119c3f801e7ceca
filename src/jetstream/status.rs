//! `hookhouse status` with a JetStream spool: the stream (messages, bytes, each replica and
//! whether it is current) and each sink's consumer (pending, waiting for an ack,
//! redelivered, and the lag in requests and seconds).

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::Stream;
use super::loader::waited_seconds;

/// The report as JSON; `print_text` renders it for a person.
pub async fn report(stream: &Stream) -> anyhow::Result<Value> {
    let name = &stream.config.stream;
    let mut handle = stream.context.get_stream(name).await?;
    let info = handle.info().await?.clone();
    let mut replicas = Vec::new();
    if let Some(cluster) = &info.cluster {
        if let Some(leader) = &cluster.leader {
            replicas.push(json!({ "name": leader, "leader": true, "current": true, "lag": 0 }));
        }
        for peer in &cluster.replicas {
            replicas.push(json!({
                "name": peer.name,
                "leader": false,
                "current": peer.current && !peer.offline,
                "lag": peer.lag.unwrap_or(0),
            }));
        }
    }
    let mut consumers = Vec::new();
    let mut listed = handle.consumers();
    while let Some(consumer) = listed.next().await {
        let consumer = consumer?;
        let behind = consumer.num_pending + consumer.num_ack_pending as u64;
        let oldest = consumer.ack_floor.stream_sequence + 1;
        let seconds = if behind == 0 { 0.0 } else { waited_seconds(&handle, oldest).await };
        consumers.push(json!({
            "consumer": consumer.name,
            "pending": consumer.num_pending,
            "ack_pending": consumer.num_ack_pending,
            "redelivered": consumer.num_redelivered,
            "lag_requests": behind,
            "lag_seconds": seconds,
            "acknowledged_through": consumer.ack_floor.stream_sequence,
        }));
    }
    Ok(json!({
        "stream": name,
        "id": stream.id,
        "messages": info.state.messages,
        "bytes": info.state.bytes,
        "first_seq": info.state.first_sequence,
        "last_seq": info.state.last_sequence,
        "max_bytes": info.config.max_bytes,
        "replicas_configured": info.config.num_replicas,
        "replicas": replicas,
        "consumers": consumers,
    }))
}

pub fn print_text(report: &Value) {
    let number = |key: &str| report[key].as_u64().unwrap_or(0);
    let text = |key: &str| report[key].as_str().unwrap_or("").to_owned();
    println!("stream  {} ({})", text("stream"), text("id"));
    println!(
        "  {} requests, {} bytes of {} (seq {} to {})",
        number("messages"),
        number("bytes"),
        report["max_bytes"],
        number("first_seq"),
        number("last_seq")
    );
    let replicas = report["replicas"].as_array().cloned().unwrap_or_default();
    println!("  {} replicas configured", number("replicas_configured"));
    for replica in &replicas {
        let role = if replica["leader"] == true { "leader" } else { "follower" };
        let state = if replica["current"] == true { "current" } else { "NOT current" };
        println!("    {} ({role}): {state}, {} behind", replica["name"], replica["lag"]);
    }
    let consumers = report["consumers"].as_array().cloned().unwrap_or_default();
    if consumers.is_empty() {
        println!("  no loader has run yet");
    }
    for consumer in &consumers {
        println!(
            "  {}: behind by {} requests / {:.1} s ({} not yet delivered, {} awaiting an ack, \
             {} redelivered)",
            consumer["consumer"].as_str().unwrap_or(""),
            consumer["lag_requests"],
            consumer["lag_seconds"].as_f64().unwrap_or(0.0),
            consumer["pending"],
            consumer["ack_pending"],
            consumer["redelivered"]
        );
    }
}

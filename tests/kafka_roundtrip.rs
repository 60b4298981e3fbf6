//! UsageEvents produced with Confluent framing through the real broker come back unchanged.

mod common;

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::{RecordDecoder, RecordEncoder};
use usage_tracker::standard::UsageEvent;

#[tokio::test]
async fn usage_events_round_trip_through_broker_and_registry() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let topic = common::unique("roundtrip");
    let created = kafka
        .ensure_topics(&[TopicSpec::new(&topic, 3, 1)])
        .await
        .unwrap();
    assert_eq!(created, vec![topic.clone()]);
    assert!(
        kafka
            .ensure_topics(&[TopicSpec::new(&topic, 3, 1)])
            .await
            .unwrap()
            .is_empty(),
        "idempotent"
    );

    let sent: Vec<UsageEvent> = (0..300)
        .map(|i| {
            let namespace = format!("project-{}", i % 7);
            common::pod_sample(
                &namespace,
                &format!("pod-{}", i % 11),
                1_700_000_000_000 + i * 10_000,
                0.1 * (i % 5) as f64,
                1e8,
            )
        })
        .collect();

    let encoder = RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &topic);
    let producer: FutureProducer = kafka
        .client_config()
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for event in &sent {
        let payload = encoder.encode(event).await.unwrap();
        let key = format!(
            "{}/{}",
            event.subject.cluster_id,
            event.subject.namespace.as_deref().unwrap()
        );
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", common::unique("roundtrip-group"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let decoder = RecordDecoder::<UsageEvent>::new(endpoint.sr_settings().unwrap());
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("all messages arrive within 60 s")
            .unwrap();
        let event = decoder.decode(message.payload().unwrap()).await.unwrap();
        let expected_key = format!(
            "test-cluster/{}",
            event.subject.namespace.as_deref().unwrap()
        );
        assert_eq!(message.key(), Some(expected_key.as_bytes()));
        received.push(event);
    }

    let by_id = |events: &mut Vec<UsageEvent>| events.sort_by(|a, b| a.id.cmp(&b.id));
    let mut sent = sent;
    by_id(&mut sent);
    by_id(&mut received);
    assert_eq!(received, sent);
}

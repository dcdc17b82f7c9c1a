//! StreamEvents under load: a subscriber that stops reading is dropped with a status, and the
//! others get every event, in order, without waiting for it.

use super::*;
use std::time::Instant;

/// The next item of an event stream, within 5 s.
async fn next(
    stream: &mut (impl tokio_stream::Stream<Item = Result<pb::NodeEvent, Status>> + Unpin),
) -> Option<Result<pb::NodeEvent, Status>> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event stream stalled")
}

#[tokio::test]
async fn a_slow_subscriber_is_dropped_and_never_delays_the_others() {
    let s = setup();
    let open = async || {
        s.service
            .stream_events(Request::new(()))
            .await
            .unwrap()
            .into_inner()
    };
    let mut slow = open().await;
    let mut fast = open().await;
    let id = VmId::generate();
    let total = 3000;
    let t0 = Instant::now();
    for batch in 0..total / 100 {
        for i in 0..100 {
            let n = batch * 100 + i;
            s.service.emit(&id, VmEventKind::Started, n.to_string());
        }
        for i in 0..100 {
            let e = next(&mut fast).await.unwrap().unwrap();
            assert_eq!(e.message, (batch * 100 + i).to_string(), "out of order");
        }
    }
    let fast_took = t0.elapsed();
    assert!(
        fast_took < Duration::from_secs(5),
        "the reading subscriber was held up: {fast_took:?}"
    );
    // The one that never read gets what was queued for it, in order, then the status.
    let mut got = 0;
    let status = loop {
        match next(&mut slow).await {
            Some(Ok(e)) => {
                assert_eq!(e.message, got.to_string());
                got += 1;
            }
            Some(Err(status)) => break status,
            None => panic!("the slow stream ended without a status after {got} events"),
        }
    };
    assert!(got < total, "nothing was dropped");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("fell behind") && status.message().contains("subscribe again"),
        "{}",
        status.message()
    );
    assert!(
        next(&mut slow).await.is_none(),
        "the dropped stream goes on"
    );
    // The reading one is still subscribed.
    s.service.emit(&id, VmEventKind::Stopped, "after".into());
    assert_eq!(next(&mut fast).await.unwrap().unwrap().message, "after");
}

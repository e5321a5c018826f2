//! Channels under contention: green and OS producers and consumers on
//! several workers, bounded and unbounded.

use std::collections::HashSet;
use std::time::Duration;

use shoal_scheduler::channel::{self, RecvTimeoutError};
use shoal_scheduler::{yield_now, Executor};

const PER_PRODUCER: u64 = 5_000;

fn run(capacity: Option<usize>) {
    let exec = Executor::builder().workers(2).build().expect("build");
    let (tx, rx) = match capacity {
        Some(cap) => channel::bounded::<u64>(cap),
        None => channel::unbounded::<u64>(),
    };
    // 6 green producers spread over both workers, 2 OS-thread producers.
    let mut green_producers = Vec::new();
    for p in 0..6u64 {
        let tx = tx.clone();
        green_producers.push(
            exec.spawn_on((p % 2) as usize, move || {
                for i in 0..PER_PRODUCER {
                    tx.send(p * PER_PRODUCER + i).expect("receivers alive");
                    if i % 64 == 0 {
                        yield_now();
                    }
                }
            })
            .expect("spawn"),
        );
    }
    let os_producers: Vec<_> = (6..8u64)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    tx.send(p * PER_PRODUCER + i).expect("receivers alive");
                }
            })
        })
        .collect();
    drop(tx);
    // 4 green consumers over both workers + 1 OS consumer.
    let consumers: Vec<_> = (0..4usize)
        .map(|c| {
            let rx = rx.clone();
            exec.spawn_on(c % 2, move || rx.iter().collect::<Vec<_>>())
                .expect("spawn")
        })
        .collect();
    let os_consumer = std::thread::spawn(move || rx.iter().collect::<Vec<_>>());

    for p in green_producers {
        p.join().expect("producer");
    }
    for p in os_producers {
        p.join().expect("os producer");
    }
    let mut all: Vec<u64> = Vec::new();
    for c in consumers {
        all.extend(c.join().expect("consumer"));
    }
    all.extend(os_consumer.join().expect("os consumer"));
    assert_eq!(all.len() as u64, 8 * PER_PRODUCER);
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a value was delivered twice");
    assert_eq!(*unique.iter().max().expect("values"), 8 * PER_PRODUCER - 1);
}

#[test]
fn bounded_channel_under_contention() {
    run(Some(4));
}

#[test]
fn rendezvous_like_channel_under_contention() {
    run(Some(1));
}

#[test]
fn unbounded_channel_under_contention() {
    run(None);
}

#[test]
fn per_producer_order_is_preserved() {
    let exec = Executor::builder().workers(2).build().expect("build");
    let (tx, rx) = channel::bounded::<(u32, u32)>(3);
    for p in 0..4u32 {
        let tx = tx.clone();
        exec.spawn(move || {
            for i in 0..2_000 {
                tx.send((p, i)).expect("send");
            }
        })
        .expect("spawn");
    }
    drop(tx);
    let got = exec
        .spawn(move || {
            let mut next = [0u32; 4];
            for (p, i) in rx.iter() {
                assert_eq!(next[p as usize], i, "out of order from producer {p}");
                next[p as usize] += 1;
            }
            next
        })
        .expect("spawn")
        .join()
        .expect("consumer");
    assert_eq!(got, [2_000; 4]);
}

#[test]
fn recv_timeout_in_a_green_thread() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let (tx, rx) = channel::bounded::<u8>(1);
    let (timed_out_tx, timed_out_rx) = channel::bounded::<()>(1);
    let waiter = exec
        .spawn(move || {
            let start = std::time::Instant::now();
            let first = rx.recv_timeout(Duration::from_millis(20));
            assert!(start.elapsed() >= Duration::from_millis(20));
            timed_out_tx.send(()).expect("signal");
            let second = rx.recv_timeout(Duration::from_secs(60));
            (first, second)
        })
        .expect("spawn");
    timed_out_rx.recv().expect("first wait over");
    tx.send(9).expect("send");
    let (first, second) = waiter.join().expect("waiter");
    assert_eq!(first, Err(RecvTimeoutError::Timeout));
    assert_eq!(second, Ok(9));
}

//! The switch hook gives every green thread its own copy of a runtime's
//! thread-local state, however green threads interleave on a worker.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shoal_scheduler::{
    current, current_stack_bounds, sleep, yield_now, Executor, ShutdownMode, SwitchHook, SwitchSlot,
};

thread_local! {
    /// A runtime's thread-local state: (owner id, stack top) of the green
    /// thread it belongs to; (0, 0) outside green threads.
    static RUNTIME_STATE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

static RESUMES: AtomicUsize = AtomicUsize::new(0);
static SUSPENDS: AtomicUsize = AtomicUsize::new(0);

fn on_resume(slot: &mut SwitchSlot) {
    RESUMES.fetch_add(1, Ordering::Relaxed);
    assert_eq!(
        RUNTIME_STATE.with(Cell::get),
        (0, 0),
        "worker state installed"
    );
    let state = slot.get::<(usize, usize)>().unwrap_or_else(|| {
        // First run: the context already describes this green thread.
        assert!(slot.is_empty());
        let id = current().id().map_or(0, |id| id.as_u64() as usize);
        let top = current_stack_bounds().map_or(0, |b| b.top);
        (id, top)
    });
    RUNTIME_STATE.with(|s| s.set(state));
}

fn on_suspend(slot: &mut SwitchSlot) {
    SUSPENDS.fetch_add(1, Ordering::Relaxed);
    slot.put(RUNTIME_STATE.with(|s| s.replace((0, 0))));
    // The slot is typed: another type reads nothing.
    assert!(slot.get::<u64>().is_none());
}

#[test]
fn each_green_thread_sees_its_own_state() {
    let exec = Executor::builder()
        .workers(2)
        .switch_hook(SwitchHook {
            on_resume,
            on_suspend,
        })
        .build()
        .expect("build");
    let handles: Vec<_> = (0..16)
        .map(|i| {
            exec.spawn(move || {
                let me = current().id().expect("green").as_u64() as usize;
                let top = current_stack_bounds().expect("bounds").top;
                for round in 0..20 {
                    assert_eq!(RUNTIME_STATE.with(Cell::get), (me, top));
                    if (i + round) % 3 == 0 {
                        sleep(Duration::from_millis(1));
                    } else {
                        yield_now();
                    }
                }
                RUNTIME_STATE.with(Cell::get) == (me, top)
            })
            .expect("spawn")
        })
        .collect();
    for handle in handles {
        assert!(handle.join().expect("green thread"));
    }
    assert_eq!(RUNTIME_STATE.with(Cell::get), (0, 0));
    // A joiner can wake before the worker's `on_suspend` of the finished
    // thread has run; once the workers have exited, every run is paired.
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
    assert!(RESUMES.load(Ordering::Relaxed) >= 16 * 21);
    assert_eq!(
        RESUMES.load(Ordering::Relaxed),
        SUSPENDS.load(Ordering::Relaxed)
    );
}

//! Worker rotation: every worker's green threads get the same mix of CPUs.
//!
//! Green threads never migrate between workers, and an unpinned worker
//! thread stays on the CPU the kernel first gave it while every CPU is
//! busy. So when one CPU is slower than the others (it takes the
//! interrupts, its hyperthread sibling is busy, or the hypervisor shares
//! the virtual CPU with another guest), the green threads of the worker on
//! it all make less progress than those of the other workers, for as long
//! as that lasts. On the 2-vCPU development VM the two workers' instances
//! of `shoal stress preempt` (1,000 spinners, 5 s) differed in mean
//! progress by up to 25% in noisy minutes, which alone put the spread of
//! the instances' progress (its coefficient of variation) above 0.02. The
//! kernel's load balancer does not help: it evens out how many threads
//! each CPU runs, not how fast they go.
//!
//! # Protocol
//!
//! 1. **When.** Rotation applies when the executor was built with
//!    [`rotate_workers`](crate::ExecutorBuilder::rotate_workers) (the
//!    default), its workers are not pinned, and there are as many workers
//!    as CPUs the process may use, at least two: one worker per CPU, so a
//!    worker that moves takes nothing from the kernel's choices but the
//!    CPU another worker leaves. (With fewer workers than CPUs the kernel
//!    may do better by moving a worker to an idle CPU; with more, workers
//!    share CPUs anyway.)
//! 2. **Homes.** Worker `i`'s home is the `i`-th allowed CPU. The CPUs are
//!    grouped by NUMA node, so that a worker never leaves the node where
//!    its green threads first touched their memory.
//! 3. **Thread ids.** Each worker thread records its kernel thread id in
//!    [`WorkerThreadIds`] when it starts and clears it, under the same
//!    lock, before its thread ends. The rotator holds that lock while it
//!    moves the thread, so it never moves a thread that has ended (whose
//!    id the kernel may have given to another thread).
//! 4. **Steps.** A rotator thread wakes every [`ROTATION_PERIOD`]; at step
//!    `s` it restricts worker `i` to the CPU `s` places after its home in
//!    its node's list (wrapping). Within a node that is a cyclic shift, so
//!    no two workers are ever sent to the same CPU; the moves of one step
//!    follow each other within microseconds. Over a run of many periods
//!    every worker spends the same share of time on each CPU of its node.
//! 5. **Failure.** If a move fails (the process's CPU set changed under
//!    it), the rotator gives every worker the process's original CPU set
//!    back and stops: the executor runs on as if rotation were off.
//! 6. **Stop.** The executor stops the rotator (dropping the channel it
//!    waits on) when its workers have been joined, or when it is dropped
//!    after a shutdown started from one of its own green threads.
//!
//! The cost is a migration per worker per period, after which its caches
//! warm up again on the new CPU, and ten wake-ups a second of the rotator.
//! With 1,000 spinning instances on the development VM, the median
//! instance's longest wait between two slices grew by about 3% (134
//! against 130 ms, 12 runs each, rotation on and off taking turns) and
//! the total progress by 0.2–0.5% (within the noise). The rotation itself
//! stalls nothing: a plain C program with two spinning threads saw the
//! same 5–10 ms stalls (the hypervisor's) with and without the threads
//! swapping CPUs every 100 ms.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::sys;

/// Time between two steps of the rotation.
pub const ROTATION_PERIOD: Duration = Duration::from_millis(100);

/// The kernel thread id of each worker, set while its thread runs (step 3).
pub(crate) struct WorkerThreadIds(Box<[Mutex<Option<libc::pid_t>>]>);

impl WorkerThreadIds {
    fn new(workers: usize) -> Arc<WorkerThreadIds> {
        Arc::new(WorkerThreadIds(
            (0..workers).map(|_| Mutex::new(None)).collect(),
        ))
    }

    /// Records the calling thread as worker `index` until the guard is
    /// dropped (at the end of the worker thread, also when it unwinds).
    pub(crate) fn register(self: &Arc<Self>, index: usize) -> ThreadIdGuard {
        if let Some(slot) = self.0.get(index) {
            *slot.lock() = Some(sys::current_thread_id());
        }
        ThreadIdGuard {
            ids: self.clone(),
            index,
        }
    }
}

/// Clears a worker's thread id when dropped.
pub(crate) struct ThreadIdGuard {
    ids: Arc<WorkerThreadIds>,
    index: usize,
}

impl Drop for ThreadIdGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.ids.0.get(self.index) {
            *slot.lock() = None;
        }
    }
}

/// Where each worker runs at each step (steps 2 and 4).
struct Plan {
    /// Per worker: the CPUs of its home's node, and its home's place there.
    rings: Vec<(Box<[usize]>, usize)>,
}

impl Plan {
    /// The plan for `workers` workers over `cpus` (ascending), `node`
    /// giving each CPU's NUMA node.
    fn new(workers: usize, cpus: &[usize], node: impl Fn(usize) -> Option<usize>) -> Plan {
        let nodes: Vec<Option<usize>> = cpus.iter().map(|&cpu| node(cpu)).collect();
        let rings = (0..workers)
            .map(|worker| {
                let home = worker % cpus.len();
                let ring: Box<[usize]> = cpus
                    .iter()
                    .zip(&nodes)
                    .filter(|(_, n)| **n == nodes[home])
                    .map(|(&cpu, _)| cpu)
                    .collect();
                let place = ring.iter().position(|&c| c == cpus[home]).unwrap_or(0);
                (ring, place)
            })
            .collect();
        Plan { rings }
    }

    /// The CPU of `worker` at `step`.
    fn cpu(&self, worker: usize, step: usize) -> usize {
        let (ring, place) = &self.rings[worker];
        ring[(place + step % ring.len()) % ring.len()]
    }
}

/// A running rotator (see the module docs); dropping it stops the thread
/// without waiting for it.
pub(crate) struct Rotator {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Rotator {
    /// Whether an executor with this configuration rotates (step 1), and
    /// over which CPUs.
    pub(crate) fn applies(rotate: bool, pinned: bool, workers: usize) -> Option<Vec<usize>> {
        if !rotate || pinned || workers < 2 {
            return None;
        }
        let cpus = sys::allowed_cpu_list().ok()?;
        (cpus.len() == workers).then_some(cpus)
    }

    /// Starts rotating the workers whose ids `WorkerThreadIds` will hold;
    /// `None` if the thread cannot be started (then nothing rotates).
    pub(crate) fn start(cpus: Vec<usize>) -> Option<(Rotator, Arc<WorkerThreadIds>)> {
        let ids = WorkerThreadIds::new(cpus.len());
        let plan = Plan::new(cpus.len(), &cpus, sys::cpu_node);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread_ids = ids.clone();
        let thread = std::thread::Builder::new()
            .name("shoal-rotate".into())
            .spawn(move || {
                let mut step = 0usize;
                let workers = 0..cpus.len();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(ROTATION_PERIOD) {
                    step = step.wrapping_add(1);
                    let moved = workers
                        .clone()
                        .all(|w| move_worker(&thread_ids, w, &[plan.cpu(w, step)]));
                    if !moved {
                        for w in workers {
                            move_worker(&thread_ids, w, &cpus);
                        }
                        return;
                    }
                }
            })
            .ok()?;
        Some((Rotator { stop, thread }, ids))
    }

    /// Stops the rotator and waits for it.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Restricts `worker`'s thread, if it runs, to `cpus`; false if that
/// failed.
fn move_worker(ids: &WorkerThreadIds, worker: usize, cpus: &[usize]) -> bool {
    let Some(slot) = ids.0.get(worker) else {
        return true;
    };
    // The lock keeps the thread from ending while it is moved (step 3).
    let tid = slot.lock();
    tid.is_none_or(|tid| sys::set_thread_affinity(tid, cpus).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_step_is_a_permutation_within_each_node() {
        // CPUs 0-3 on node 0, 4-7 on node 1.
        let cpus = [0, 1, 2, 3, 4, 5, 6, 7];
        let plan = Plan::new(8, &cpus, |cpu| Some(cpu / 4));
        for step in 0..10 {
            let placed: Vec<usize> = (0..8).map(|w| plan.cpu(w, step)).collect();
            let distinct: HashSet<_> = placed.iter().collect();
            assert_eq!(distinct.len(), 8, "step {step}: {placed:?}");
            for (worker, cpu) in placed.iter().enumerate() {
                assert_eq!(cpu / 4, worker / 4, "worker {worker} left its node");
            }
        }
        assert_eq!(plan.cpu(1, 0), 1, "step 0 is the home");
        assert_eq!(plan.cpu(1, 1), 2);
        assert_eq!(plan.cpu(3, 1), 0, "wraps within the node");
        assert_eq!(plan.cpu(4, 5), 5);
    }

    #[test]
    fn each_worker_visits_every_cpu_of_its_node() {
        let cpus = [2, 3, 5];
        let plan = Plan::new(3, &cpus, |_| None);
        for worker in 0..3 {
            let visited: HashSet<_> = (0..3).map(|s| plan.cpu(worker, s)).collect();
            assert_eq!(visited, cpus.iter().copied().collect());
        }
    }

    #[test]
    fn applies_only_to_unpinned_executors_with_one_worker_per_cpu() {
        let cpus = sys::allowed_cpu_list().expect("affinity");
        let n = cpus.len();
        assert_eq!(Rotator::applies(false, false, n), None);
        assert_eq!(Rotator::applies(true, true, n), None);
        assert_eq!(Rotator::applies(true, false, n + 1), None);
        assert_eq!(Rotator::applies(true, false, 1), None);
        if n >= 2 {
            assert_eq!(Rotator::applies(true, false, n), Some(cpus));
        }
    }
}

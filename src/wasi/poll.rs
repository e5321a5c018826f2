//! `poll_oneoff`: wait until the first of a set of clock and fd
//! subscriptions fires.
//!
//! # How it waits
//!
//! 1. Every subscription is decoded and sorted out up front: clocks become
//!    deadlines on the monotonic clock (absolute times are converted from
//!    their own clock); fds that are always ready (regular files, in-memory
//!    pipes) and subscriptions that fail (bad fd, missing rights, unknown
//!    clock) become events at once; fds that can block (the process's
//!    stdio, sockets) become `pollfd`s.
//! 2. Then, in a loop: `poll(2)` with a zero timeout collects the ready
//!    fds, expired deadlines fire, and if anything did the call returns
//!    every event that is ready. Otherwise it waits:
//!    - off a green thread, `poll(2)` blocks the OS thread until an fd is
//!      ready or the earliest deadline;
//!    - on a green thread with only clocks, the green thread sleeps until
//!      the earliest deadline (`shoal_scheduler::try_sleep`);
//!    - on a green thread with exactly one fd and no clock, it parks until
//!      the worker's Poll sees that fd ready;
//!    - on a green thread with fds and a clock, or several fds, it parks
//!      until the first fd is ready or the earliest deadline: each distinct
//!      host fd is duplicated and registered with the worker's Poll for
//!      this one wait, next to a timer (`host_io::WaitSet` over
//!      `shoal_scheduler::io::wait_any`; the duplicates are made at the
//!      first wait and kept for the call); the wake-up only says that
//!      something changed, and the loop collects the events again.
//!
//!    Only the green thread waits: the worker runs other instances.
//! 3. A cancelled green thread ends the call with
//!    `Trap { kind: Cancelled }`.

use super::abi::{self, clockid, event, rights, Subscription, EVENT_SIZE, SUBSCRIPTION_SIZE};
use super::clocks;
use super::errno::{CallResult, Errno};
use super::fd_table::{Descriptor, Input, Output};
use super::guest_memory::GuestMemory;
use super::host_io::{self, Interest};
use super::WasiCtx;
use std::io::Seek;
use std::time::Duration;

/// A subscription still waiting on a host fd.
struct FdWait {
    userdata: u64,
    kind: u8,
    interest: Interest,
}

/// A clock subscription: fires when the monotonic clock reaches `deadline`.
struct Timer {
    userdata: u64,
    deadline: u64,
}

/// What a subscription on `fd` amounts to.
enum FdPlan {
    /// Ready now, with this many bytes available to read.
    Ready(u64),
    /// Wait for this host fd.
    Host(i32),
    /// Fails with this errno.
    Fails(Errno),
}

fn plan_fd(ctx: &mut WasiCtx, fd: u32, interest: Interest) -> FdPlan {
    let entry = match ctx.fds.get_with(fd, rights::POLL_FD_READWRITE) {
        Ok(entry) => entry,
        Err(errno) => return FdPlan::Fails(errno),
    };
    match &entry.desc {
        Descriptor::File(file) => {
            if interest == Interest::Write {
                return FdPlan::Ready(0);
            }
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let pos = (&*file).stream_position().unwrap_or(size);
            FdPlan::Ready(size.saturating_sub(pos))
        }
        Descriptor::Input(Input::Pipe(pipe)) => FdPlan::Ready(pipe.remaining() as u64),
        Descriptor::Input(Input::Null) | Descriptor::Output(Output::Pipe(_) | Output::Null) => {
            FdPlan::Ready(0)
        }
        Descriptor::Input(Input::Inherit) => FdPlan::Host(0),
        Descriptor::Output(Output::Stdout) => FdPlan::Host(1),
        Descriptor::Output(Output::Stderr) => FdPlan::Host(2),
        Descriptor::TcpStream(s) => FdPlan::Host(s.raw_fd()),
        Descriptor::TcpListener(l) => FdPlan::Host(l.raw_fd()),
        Descriptor::Dir(_) => FdPlan::Fails(Errno::Badf),
    }
}

/// The monotonic deadline of a clock subscription, or why it fails.
fn deadline(start: u64, id: u32, timeout: u64, flags: u16) -> Result<u64, Errno> {
    if id != clockid::REALTIME && id != clockid::MONOTONIC {
        // CPU-time clocks cannot be waited on; unknown ids are invalid.
        return Err(if id <= clockid::THREAD_CPUTIME_ID {
            Errno::NotSup
        } else {
            Errno::Inval
        });
    }
    let remaining = if flags & event::SUBSCRIPTION_CLOCK_ABSTIME != 0 {
        timeout.saturating_sub(clocks::now(id)?)
    } else {
        timeout
    };
    Ok(start.saturating_add(remaining))
}

/// The most subscriptions one `poll_oneoff` may pass; more is `EINVAL`.
/// The host keeps a record per subscription while it waits, and a guest
/// with a large memory could otherwise have it allocate gigabytes for one
/// call (4 GiB of memory holds 89 million subscriptions).
pub const MAX_SUBSCRIPTIONS: u32 = 65_536;

/// How long a wait with no fd and no valid clock sleeps before checking
/// again (it cannot happen: such a call has an event at once).
const MAX_SLEEP: Duration = Duration::from_millis(16);

/// `poll_oneoff(in, out, nsubscriptions, nevents)`.
pub fn poll_oneoff(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    in_ptr: u32,
    out_ptr: u32,
    nsubs: u32,
    nevents_ptr: u32,
) -> CallResult {
    if nsubs == 0 || nsubs > MAX_SUBSCRIPTIONS {
        return Err(Errno::Inval.into());
    }
    mem.slice(
        in_ptr,
        nsubs.checked_mul(SUBSCRIPTION_SIZE).ok_or(Errno::Fault)?,
    )?;
    mem.slice_mut(out_ptr, nsubs.checked_mul(EVENT_SIZE).ok_or(Errno::Fault)?)?;
    mem.slice_mut(nevents_ptr, 4)?;

    let start = clocks::now(clockid::MONOTONIC)?;
    let mut events: Vec<[u8; 32]> = Vec::new();
    let mut timers = Vec::new();
    let mut waits = Vec::new();
    let mut pollfds = Vec::new();
    for i in 0..nsubs {
        let sub = Subscription::decode(&mem.read_48(in_ptr + i * SUBSCRIPTION_SIZE)?);
        let userdata = sub.userdata();
        let (fd, kind, interest) = match sub {
            Subscription::Clock {
                id, timeout, flags, ..
            } => {
                match deadline(start, id, timeout, flags) {
                    Ok(deadline) => timers.push(Timer { userdata, deadline }),
                    Err(e) => {
                        events.push(abi::encode_event(userdata, e as u16, event::CLOCK, 0, 0))
                    }
                }
                continue;
            }
            Subscription::FdRead { fd, .. } => (fd, event::FD_READ, Interest::Read),
            Subscription::FdWrite { fd, .. } => (fd, event::FD_WRITE, Interest::Write),
            Subscription::Invalid { .. } => {
                events.push(abi::encode_event(userdata, Errno::Inval as u16, 0, 0, 0));
                continue;
            }
        };
        match plan_fd(ctx, fd, interest) {
            FdPlan::Ready(nbytes) => events.push(abi::encode_event(userdata, 0, kind, nbytes, 0)),
            FdPlan::Fails(e) => events.push(abi::encode_event(userdata, e as u16, kind, 0, 0)),
            FdPlan::Host(raw) => {
                waits.push(FdWait {
                    userdata,
                    kind,
                    interest,
                });
                pollfds.push(host_io::pollfd(raw, interest));
            }
        }
    }

    let green = shoal_scheduler::is_green_thread();
    let mut wait_set: Option<host_io::WaitSet> = None;
    loop {
        // Collect whatever is ready now.
        if !pollfds.is_empty() {
            for p in pollfds.iter_mut() {
                p.revents = 0;
            }
            host_io::poll_fds(&mut pollfds, Some(Duration::ZERO))?;
            for (wait, p) in waits.iter().zip(&pollfds) {
                if p.revents == 0 {
                    continue;
                }
                let error = if p.revents & libc::POLLNVAL != 0 {
                    Errno::Badf as u16
                } else {
                    0
                };
                let flags = if p.revents & libc::POLLHUP != 0 {
                    event::FD_READWRITE_HANGUP
                } else {
                    0
                };
                events.push(abi::encode_event(wait.userdata, error, wait.kind, 0, flags));
            }
        }
        let now = clocks::now(clockid::MONOTONIC)?;
        for timer in &timers {
            if timer.deadline <= now {
                events.push(abi::encode_event(timer.userdata, 0, event::CLOCK, 0, 0));
            }
        }
        if !events.is_empty() {
            break;
        }

        // Nothing yet: wait for the earliest deadline or an fd.
        let remaining = timers
            .iter()
            .map(|t| Duration::from_nanos(t.deadline.saturating_sub(now)))
            .min();
        if !green {
            if pollfds.is_empty() {
                std::thread::sleep(remaining.unwrap_or(MAX_SLEEP));
            } else {
                host_io::poll_fds(&mut pollfds, remaining)?;
            }
        } else if pollfds.is_empty() {
            host_io::sleep(remaining.unwrap_or(MAX_SLEEP))?;
        } else {
            if wait_set.is_none() {
                let fds = waits.iter().zip(&pollfds).map(|(w, p)| (p.fd, w.interest));
                wait_set = Some(host_io::WaitSet::new(fds)?);
            }
            if let Some(set) = &wait_set {
                set.wait(remaining)?;
            }
        }
    }

    let count = events.len().min(nsubs as usize);
    for (i, ev) in events.iter().take(count).enumerate() {
        mem.write(out_ptr + i as u32 * EVENT_SIZE, ev)?;
    }
    mem.write_u32(nevents_ptr, count as u32)?;
    Ok(())
}
